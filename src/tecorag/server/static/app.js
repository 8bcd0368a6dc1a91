// tecorag web UI: plain JavaScript, no build step. Talks to the same API as every other client.
"use strict";

const STORAGE = { apiKey: "tecorag.apiKey", kb: "tecorag.kb", chat: (kb) => `tecorag.chat.${kb}` };
const HISTORY_TURNS = 4;            // previous question/answer pairs sent with a question
const JOB_POLL_MS = 600;
const PARALLEL_UPLOADS = 2;
const STATUS_LABELS = { indexed: "已索引", indexing: "索引中", pending: "等待中", failed: "失败", queued: "排队中",
                        skipped: "未变化", uploading: "上传中" };

const state = {
  apiKey: localStorage.getItem(STORAGE.apiKey) || "",
  kb: null,
  kbs: [],
  asking: false,
  conversation: [],                 // [{question, answer, docs, notice, error}]
};

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------------------------------
// API access: adds the key, asks for one on 401, turns error envelopes into exceptions.

class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (state.apiKey) headers.set("X-API-Key", state.apiKey);
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    const key = await askForApiKey(state.apiKey ? "API key 无效，请重新输入。" : "该服务需要 API key。");
    if (key === null) throw new ApiError("需要 API key", 401);
    return api(path, options);
  }
  return response;
}

async function apiJson(path, options = {}) {
  const response = await api(path, options);
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) throw new ApiError((body && (body.msg || body.detail)) || response.statusText, response.status);
  return body ? body.data : null;
}

function postJson(path, payload) {
  return apiJson(path, { method: "POST", headers: { "Content-Type": "application/json" },
                         body: JSON.stringify(payload) });
}

const kbPath = (kb) => `/knowledge_bases/${encodeURIComponent(kb)}`;

// ---------------------------------------------------------------------------------------------------
// Small UI helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

function toast(message, kind = "info") {
  const node = el("div", { class: `toast ${kind}`, text: message });
  $("toasts").append(node);
  setTimeout(() => node.remove(), kind === "error" ? 6000 : 3000);
}

function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function extension(name) {
  const dot = name.lastIndexOf(".");
  return dot > 0 ? name.slice(dot + 1).toLowerCase() : "";
}

// A modal built on <dialog>: fields [{name, label, type, placeholder}] -> values, or null when cancelled.
function openDialog({ title, text = "", fields = [], okText = "确定", danger = false, validate = null }) {
  const dialog = $("dialog");
  $("dialog-title").textContent = title;
  $("dialog-text").textContent = text;
  $("dialog-text").hidden = !text;
  const error = $("dialog-error");
  error.hidden = true;
  const inputs = fields.map((field) => el("input", { name: field.name, type: field.type || "text",
                                                     placeholder: field.placeholder || "", autocomplete: "off" }));
  $("dialog-fields").replaceChildren(...fields.map((field, i) => el("div", {}, el("label", { text: field.label }),
                                                                     inputs[i])));
  const ok = $("dialog-ok");
  ok.textContent = okText;
  ok.className = `btn ${danger ? "btn-danger" : "btn-primary"}`;
  return new Promise((resolve) => {
    const finish = (result) => {
      dialog.close();
      $("dialog-form").onsubmit = null;
      $("dialog-cancel").onclick = null;
      dialog.oncancel = null;
      resolve(result);
    };
    $("dialog-form").onsubmit = async (event) => {
      event.preventDefault();
      const values = Object.fromEntries(inputs.map((input) => [input.name, input.value.trim()]));
      if (validate) {
        ok.disabled = true;
        const problem = await validate(values);
        ok.disabled = false;
        if (problem) { error.textContent = problem; error.hidden = false; return; }
      }
      finish(values);
    };
    $("dialog-cancel").onclick = () => finish(null);
    dialog.oncancel = () => finish(null);
    dialog.showModal();
    (inputs[0] || ok).focus();
  });
}

async function askForApiKey(reason) {
  const values = await openDialog({ title: "请输入 API key", text: reason,
                                    fields: [{ name: "key", label: "API key", type: "password" }] });
  if (values === null || !values.key) return null;
  state.apiKey = values.key;
  localStorage.setItem(STORAGE.apiKey, values.key);
  showAuthStatus();
  return values.key;
}

function showAuthStatus() {
  const badge = $("auth-status");
  badge.hidden = !state.apiKey;
  badge.textContent = "已设置 API key";
  badge.title = "点击清除保存的 API key";
}

// ---------------------------------------------------------------------------------------------------
// Knowledge bases

async function loadKnowledgeBases(select = null) {
  state.kbs = await postJson("/knowledge_base/get_kb_details", {}) || [];
  const names = state.kbs.map((kb) => kb.kb_name);
  const wanted = select || state.kb || localStorage.getItem(STORAGE.kb);
  state.kb = names.includes(wanted) ? wanted : (names[0] || null);
  const picker = $("kb-select");
  picker.replaceChildren(...(names.length ? state.kbs.map((kb) => el("option", { value: kb.kb_name, text: kb.kb_name }))
                                          : [el("option", { value: "", text: "还没有知识库，请先新建" })]));
  picker.value = state.kb || "";
  if (state.kb) localStorage.setItem(STORAGE.kb, state.kb);
  renderKbStats();
  updateEnabled();
  loadConversation();
  await loadFiles();
}

function currentKbDetails() {
  return state.kbs.find((kb) => kb.kb_name === state.kb) || null;
}

function renderKbStats() {
  const kb = currentKbDetails();
  $("kb-stats").textContent = kb ? `${kb.file_count} 个文件 · ${kb.chunk_count} 个片段` +
                                   (kb.kb_info ? ` · ${kb.kb_info}` : "") : "";
  $("chat-title").textContent = kb ? `对话 · ${kb.kb_name}` : "对话";
}

function updateEnabled() {
  const hasKb = Boolean(state.kb);
  for (const id of ["kb-clear", "kb-delete", "ask-button", "question", "files-refresh", "chat-reset"]) {
    $(id).disabled = !hasKb || (state.asking && (id === "ask-button"));
  }
  $("dropzone").classList.toggle("disabled", !hasKb);
}

async function createKnowledgeBase() {
  const values = await openDialog({
    title: "新建知识库",
    fields: [{ name: "name", label: "名称", placeholder: "例如：员工手册" },
             { name: "info", label: "描述（可选）", placeholder: "这个知识库里有什么" }],
    okText: "创建",
    validate: async ({ name, info }) => {
      if (!name) return "请输入名称";
      try {
        await postJson("/knowledge_base/create_knowledge_base", { knowledge_base_name: name, kb_info: info });
      } catch (error) {
        if (error.status === 404) return `已存在同名知识库「${name}」`;
        if (error.status === 403) return "名称不能包含 /、\\、.. 或控制字符，也不能以 . 开头";
        return `创建失败：${error.message}`;
      }
      return null;
    },
  });
  if (values === null) return;
  toast(`已新建知识库「${values.name}」`);
  await loadKnowledgeBases(values.name);
}

async function clearKnowledgeBase() {
  const kb = currentKbDetails();
  if (!kb) return;
  const confirmed = await openDialog({ title: "清空知识库",
    text: `确定清空知识库「${kb.kb_name}」吗？其中的 ${kb.file_count} 个文件及全部索引将被删除，此操作不可恢复。`,
    okText: "清空", danger: true });
  if (confirmed === null) return;
  try {
    await postJson("/knowledge_base/clear_knowledge_base", { knowledge_base_name: kb.kb_name });
    toast(`已清空「${kb.kb_name}」`);
  } catch (error) { toast(`清空失败：${error.message}`, "error"); }
  await loadKnowledgeBases();
}

async function deleteKnowledgeBase() {
  const kb = currentKbDetails();
  if (!kb) return;
  const confirmed = await openDialog({ title: "删除知识库",
    text: `确定删除知识库「${kb.kb_name}」吗？知识库本身和其中的全部文件都将被删除，此操作不可恢复。`,
    okText: "删除", danger: true });
  if (confirmed === null) return;
  try {
    await postJson("/knowledge_base/delete_knowledge_base", { knowledge_base_name: kb.kb_name });
    localStorage.removeItem(STORAGE.chat(kb.kb_name));
    toast(`已删除「${kb.kb_name}」`);
  } catch (error) { toast(`删除失败：${error.message}`, "error"); }
  state.kb = null;
  await loadKnowledgeBases();
}

// ---------------------------------------------------------------------------------------------------
// Files

async function loadFiles() {
  const list = $("file-list");
  if (!state.kb) { list.replaceChildren(); $("file-count").textContent = ""; return; }
  const kb = state.kb;
  let files;
  try { files = await apiJson(`${kbPath(kb)}/files`); } catch (error) {
    list.replaceChildren(el("li", { class: "empty error", text: `无法读取文件列表：${error.message}` }));
    return;
  }
  if (kb !== state.kb) return;
  $("file-count").textContent = files.length ? `(${files.length})` : "";
  if (!files.length) {
    list.replaceChildren(el("li", { class: "empty", text: "还没有文件，上传文档后即可提问。" }));
    return;
  }
  list.replaceChildren(...files.map((file) => {
    const ext = extension(file.name);
    const meta = file.status === "indexed" ? `${file.chunk_count} 个片段 · ${formatSize(file.size)}`
                                           : formatSize(file.size);
    return el("li", { class: "file-item", "data-file": file.name, "data-status": file.status },
      el("span", { class: `file-icon ${ext}`, text: (ext || "?").slice(0, 4) }),
      el("div", { class: "file-main" },
        el("div", { class: "file-name", title: file.name, text: file.name }),
        el("div", { class: "file-meta", text: meta }),
        file.error ? el("div", { class: "file-error", text: file.error }) : null),
      el("span", { class: `badge ${file.status}`, text: STATUS_LABELS[file.status] || file.status }),
      el("button", { class: "file-delete", type: "button", title: "删除文件", text: "✕",
                     onclick: () => deleteFile(file.name) }));
  }));
}

async function deleteFile(name) {
  const confirmed = await openDialog({ title: "删除文件", text: `确定从知识库「${state.kb}」删除「${name}」吗？`,
                                       okText: "删除", danger: true });
  if (confirmed === null) return;
  try {
    await apiJson(`${kbPath(state.kb)}/files/${encodeURIComponent(name)}`, { method: "DELETE" });
    toast(`已删除「${name}」`);
  } catch (error) { toast(`删除失败：${error.message}`, "error"); }
  await refreshKb();
}

async function refreshKb() {
  state.kbs = await postJson("/knowledge_base/get_kb_details", {}) || [];
  renderKbStats();
  await loadFiles();
}

// ---------------------------------------------------------------------------------------------------
// Upload: one request per file (its own progress bar), indexed by a background job that we poll.

function uploadRow(file) {
  const bar = el("span");
  const stateText = el("span", { class: "state", text: "等待上传" });
  const reason = el("div", { class: "reason", hidden: true });
  const row = el("li", { class: "upload-item", "data-upload": file.name },
    el("div", { class: "row" }, el("span", { class: "name", title: file.name, text: file.name }), stateText),
    el("div", { class: "bar" }, bar), reason);
  $("upload-list").prepend(row);
  return {
    set(status, { percent = null, error = null, text = null } = {}) {
      row.className = `upload-item ${status}`;
      row.dataset.status = status;
      stateText.textContent = text || STATUS_LABELS[status] || status;
      if (percent !== null) bar.style.width = `${percent}%`;
      reason.hidden = !error;
      reason.textContent = error || "";
    },
  };
}

function sendFile(kb, file, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", `${kbPath(kb)}/files`);
    if (state.apiKey) request.setRequestHeader("X-API-Key", state.apiKey);
    request.upload.onprogress = (event) => { if (event.lengthComputable) onProgress(event.loaded / event.total); };
    request.onload = () => {
      let body = null;
      try { body = JSON.parse(request.responseText); } catch (_) { /* not JSON */ }
      if (request.status === 202 && body) resolve(body.data);
      else reject(new ApiError((body && body.msg) || `HTTP ${request.status}`, request.status));
    };
    request.onerror = () => reject(new ApiError("网络错误", 0));
    const form = new FormData();
    form.append("files", file, file.name);
    request.send(form);
  });
}

async function waitForJob(jobId, onUpdate) {
  for (;;) {
    const job = await apiJson(`/jobs/${jobId}`);
    onUpdate(job);
    if (job.status === "done" || job.status === "failed") return job;
    await new Promise((resolve) => setTimeout(resolve, JOB_POLL_MS));
  }
}

async function uploadOne(kb, file) {
  const row = uploadRow(file);
  try {
    row.set("uploading", { percent: 0, text: "上传中 0%" });
    let job = await sendFile(kb, file, (fraction) => {
      const percent = Math.round(fraction * 100);
      row.set("uploading", { percent, text: `上传中 ${percent}%` });
    });
    job = await waitForJob(job.id, (current) => {
      const entry = (current.result && current.result.files && current.result.files[file.name]) || {};
      if (current.status === "running" || current.status === "queued") {
        row.set(entry.status === "indexing" ? "indexing" : "queued", { percent: 100 });
      }
    });
    const entry = (job.result && job.result.files && job.result.files[file.name]) || {};
    if (job.status === "failed" || entry.status === "failed") {
      row.set("failed", { percent: 100, error: entry.error || job.error || "失败" });
    } else if (entry.status === "skipped") {
      row.set("done", { percent: 100, text: "未变化，已跳过" });
    } else {
      row.set("done", { percent: 100, text: "已索引" });
    }
  } catch (error) {
    const message = error.status === 413 ? `文件过大：${error.message}` : error.message;
    row.set("failed", { percent: 100, error: message });
  }
}

async function uploadFiles(fileList) {
  const kb = state.kb;
  if (!kb) { toast("请先新建或选择一个知识库", "error"); return; }
  const queue = Array.from(fileList);
  if (!queue.length) return;
  const worker = async () => {
    while (queue.length) {
      await uploadOne(kb, queue.shift());
      if (kb === state.kb) await refreshKb();
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_UPLOADS, queue.length) }, worker));
}

function setUpDropzone() {
  const zone = $("dropzone");
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => { event.preventDefault(); zone.classList.add("dragover"); });
  }
  for (const name of ["dragleave", "drop"]) {
    zone.addEventListener(name, (event) => { event.preventDefault(); zone.classList.remove("dragover"); });
  }
  zone.addEventListener("drop", (event) => uploadFiles(event.dataTransfer.files));
  $("file-input").addEventListener("change", (event) => {
    uploadFiles(event.target.files);
    event.target.value = "";
  });
}

// ---------------------------------------------------------------------------------------------------
// Chat: the Teco-RAG SSE endpoint read with fetch + ReadableStream; each event holds the answer so far.

function loadConversation() {
  try { state.conversation = JSON.parse(localStorage.getItem(STORAGE.chat(state.kb)) || "[]"); }
  catch (_) { state.conversation = []; }
  renderConversation();
}

function saveConversation() {
  if (state.kb) localStorage.setItem(STORAGE.chat(state.kb), JSON.stringify(state.conversation.slice(-50)));
}

function renderConversation() {
  const box = $("messages");
  if (!state.conversation.length) {
    box.replaceChildren(el("div", { class: "welcome" },
      el("div", { class: "big", text: "💬" }),
      el("h2", { text: state.kb ? `向「${state.kb}」提问` : "先新建一个知识库" }),
      el("div", { text: state.kb ? "答案来自知识库中的文档，每个答案都附有可展开的参考来源。"
                                 : "在左侧新建知识库并上传文档（PDF、Word 等），然后在这里提问。" })));
    return;
  }
  box.replaceChildren(...state.conversation.flatMap((turn) => [userMessage(turn.question), assistantMessage(turn).node]));
  box.scrollTop = box.scrollHeight;
}

function userMessage(text) {
  return el("div", { class: "msg user" }, el("div", { class: "avatar", text: "我" }),
    el("div", { class: "msg-body" }, el("div", { class: "bubble", text })));
}

function assistantMessage(turn) {
  const text = el("div", { class: "bubble answer-text" });
  const extras = el("div", { class: "msg-extras" });
  const node = el("div", { class: "msg assistant" }, el("div", { class: "avatar", text: "答" }),
    el("div", { class: "msg-body" }, text, extras));
  const view = {
    node,
    update(current, streaming) {
      text.classList.toggle("streaming", streaming);
      if (!current.answer && streaming) text.replaceChildren(el("span", { class: "thinking", text: "正在检索与生成…" }));
      else text.textContent = current.answer || "";
      extras.replaceChildren(...[
        current.notice ? el("div", { class: "notice", text: current.notice }) : null,
        current.error ? el("div", { class: "msg-error", text: current.error }) : null,
        current.docs && current.docs.length ? sourcesView(current.docs) : null].filter(Boolean));
    },
  };
  view.update(turn, false);
  return view;
}

function sourcesView(docs) {
  const list = el("div", { class: "sources-list", hidden: true });
  list.append(...docs.map((doc, i) => {
    const page = doc.page ? ` · 第 ${doc.page} 页` : "";
    return el("details", { class: "source", "data-source": String(i + 1) },
      el("summary", {},
        el("span", { class: "num", text: String(i + 1) }),
        el("span", { class: "where", title: doc.filename }, doc.filename, el("span", { class: "page", text: page })),
        el("span", { class: "score", title: "检索得分", text: Number(doc.similarity_score).toFixed(3) })),
      el("blockquote", {}, doc.heading ? el("span", { class: "heading", text: doc.heading }) : null, doc.context));
  }));
  const toggle = el("button", { class: "sources-toggle", type: "button", text: `参考来源（${docs.length}）▾`,
    onclick: () => {
      list.hidden = !list.hidden;
      toggle.textContent = `参考来源（${docs.length}）${list.hidden ? "▾" : "▴"}`;
    } });
  return el("div", { class: "sources" }, toggle, list);
}

function historyPairs() {
  return state.conversation.filter((turn) => turn.answer && !turn.error)
    .slice(-HISTORY_TURNS).map((turn) => [turn.question, turn.answer]);
}

async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder("utf-8");
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
    let boundary;
    while ((boundary = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, boundary);
      buffer = buffer.slice(boundary + 2);
      for (const line of block.split("\n")) {
        if (line.startsWith("data: ")) onEvent(JSON.parse(line.slice(6)));
      }
    }
    if (done) return;
  }
}

async function ask(question) {
  if (!state.kb || state.asking || !question) return;
  const kb = state.kb;
  const history = historyPairs();
  if (!state.conversation.length) $("messages").replaceChildren();
  const turn = { question, answer: "", docs: [], notice: null, error: null };
  state.conversation.push(turn);
  const box = $("messages");
  const view = assistantMessage(turn);
  box.append(userMessage(question), view.node);
  view.update(turn, true);
  box.scrollTop = box.scrollHeight;
  state.asking = true;
  updateEnabled();
  try {
    const response = await api("/chat/knowledge_base_chat", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ query: question, knowledge_base_name: kb, history, stream: true, return_docs: true }),
    });
    if (!response.ok) {
      let body = null;
      try { body = await response.json(); } catch (_) { /* not JSON */ }
      throw new ApiError((body && body.msg) || response.statusText, response.status);
    }
    await readEvents(response, (event) => {
      turn.answer = event.result || "";
      if (event.docs) turn.docs = event.docs;
      if (event.notice) turn.notice = event.notice;
      if (event.error) turn.error = `出错了：${event.error}`;
      view.update(turn, true);
      box.scrollTop = box.scrollHeight;
    });
  } catch (error) {
    turn.error = `出错了：${error.message}`;
  } finally {
    state.asking = false;
    view.update(turn, false);
    updateEnabled();
    if (kb === state.kb) saveConversation();
    box.scrollTop = box.scrollHeight;
  }
}

function setUpAskForm() {
  const input = $("question");
  const submit = () => {
    const question = input.value.trim();
    if (!question || state.asking) return;
    input.value = "";
    autoSize();
    ask(question);
  };
  const autoSize = () => { input.style.height = "auto"; input.style.height = `${Math.min(input.scrollHeight, 160)}px`; };
  input.addEventListener("input", autoSize);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); submit(); }
  });
  $("ask-form").addEventListener("submit", (event) => { event.preventDefault(); submit(); });
}

// ---------------------------------------------------------------------------------------------------

async function main() {
  showAuthStatus();
  $("auth-status").addEventListener("click", () => {
    state.apiKey = "";
    localStorage.removeItem(STORAGE.apiKey);
    showAuthStatus();
    toast("已清除保存的 API key");
  });
  $("kb-new").addEventListener("click", createKnowledgeBase);
  $("kb-clear").addEventListener("click", clearKnowledgeBase);
  $("kb-delete").addEventListener("click", deleteKnowledgeBase);
  $("files-refresh").addEventListener("click", refreshKb);
  $("chat-reset").addEventListener("click", () => {
    state.conversation = [];
    saveConversation();
    renderConversation();
  });
  $("kb-select").addEventListener("change", async (event) => {
    state.kb = event.target.value || null;
    if (state.kb) localStorage.setItem(STORAGE.kb, state.kb);
    renderKbStats();
    updateEnabled();
    loadConversation();
    await loadFiles();
  });
  setUpDropzone();
  setUpAskForm();
  try {
    await loadKnowledgeBases();
  } catch (error) {
    toast(`无法连接服务：${error.message}`, "error");
  }
}

main();
