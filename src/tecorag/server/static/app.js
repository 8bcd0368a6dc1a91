// tecorag web UI: plain JavaScript, no build step. Talks to the same API as every other client.
"use strict";

const STORAGE = {
  apiKey: "tecorag.apiKey",
  kb: "tecorag.kb",
  settings: "tecorag.settings",
  jobs: "tecorag.jobs",                                    // upload jobs still running: resumed after a reload
  conversations: (kb) => `tecorag.conversations.${kb}`,
  oldChat: (kb) => `tecorag.chat.${kb}`,                   // one conversation per KB, before named conversations
};
const HISTORY_TURNS = 4;            // previous question/answer pairs sent with a question
const JOB_POLL_MS = 600;
const FILES_POLL_MS = 2000;         // the file list refreshes while a file is being indexed
const PARALLEL_UPLOADS = 2;
const MAX_CONVERSATIONS = 30;
const MAX_TURNS = 50;
const ACCEPTED_TYPES = ".pdf,.docx,.doc,.pptx,.xlsx,.csv,.md,.markdown,.txt,.html,.htm,.png,.jpg,.jpeg,.bmp";
const DEFAULT_SETTINGS = { topK: null, scoreThreshold: null };   // null: the server's configured value
const PHONE_WIDTH = 860;            // below this the page shows one panel at a time (see app.css)

const STATUS_LABELS = { indexed: "已索引", indexing: "索引中", pending: "等待中", failed: "失败", queued: "排队中",
                        skipped: "未变化", uploading: "上传中", waiting: "等待上传", parsing: "解析中",
                        embedding: "向量化", storing: "写入中", done: "已索引" };

// Stable codes from the API (`error_code`, `notice_code`, a file's `error_code`) in the page's language.
const ERROR_TEXT = {
  api_key_required: "需要有效的 API key",
  kb_not_found: "知识库不存在（可能已被删除），请刷新页面",
  kb_exists: "已存在同名知识库",
  invalid_name: "名称不能包含 /、\\、.. 或控制字符，也不能以 . 开头",
  file_not_found: "文件不在知识库中（可能已被删除）",
  job_not_found: "找不到该上传任务",
  original_not_kept: "服务器没有保存这个文件的原件，请重新上传",
  too_large: "文件过大或一次上传的文件过多",
  invalid_input: "请求内容有误",
  unreadable_file: "无法读取该文件",
  llm_timeout: "大模型响应超时，请稍后重试",
  llm_failed: "大模型服务出错，请稍后重试",
  not_found: "接口不存在",
  internal: "服务器内部错误",
  network: "网络错误，请检查连接",
};
const FILE_ERROR_TEXT = {
  unsupported_type: (name) => `不支持的文件类型${extension(name) ? `（.${extension(name)}）` : ""}`,
  empty_file: () => "文件是空的",
  no_text: () => "文件中没有可提取的文字",
  encrypted: () => "文件有密码保护，请去掉密码后再上传",
  unknown_encoding: () => "无法识别文字编码（可能不是文本文件）",
  missing_tool: () => "服务器缺少读取此格式所需的组件",
  corrupt: () => "文件已损坏或格式无法解析",
  unreadable: () => "无法读取该文件",
};
const NOTICE_TEXT = { kb_empty: "这个知识库里还没有已索引的文档，请先上传文件，索引完成后再提问。" };

const state = {
  apiKey: localStorage.getItem(STORAGE.apiKey) || "",
  authRequired: false,
  kb: null,
  kbs: [],
  files: [],
  asking: null,                     // the AbortController of the answer being streamed
  conversations: { active: null, list: [] },
  settings: { ...DEFAULT_SETTINGS, ...readJson(STORAGE.settings, {}) },
  uploadsInFlight: 0,               // files picked but not yet handed to the server (leaving would lose them)
  filesTimer: null,
};

const $ = (id) => document.getElementById(id);

function readJson(key, fallback) {
  try { return JSON.parse(localStorage.getItem(key)) ?? fallback; } catch (_) { return fallback; }
}

// ---------------------------------------------------------------------------------------------------
// API access: adds the key, asks for one on 401, turns error envelopes into exceptions with a code.

class ApiError extends Error {
  constructor(message, status, code = null) { super(message); this.status = status; this.code = code; }
}

// The error as the user should read it: Chinese text for a known code, the server's message otherwise.
function errorText(error) {
  if (error && error.code && ERROR_TEXT[error.code]) return ERROR_TEXT[error.code];
  return (error && error.message) || "未知错误";
}

function fileErrorText(name, code, message) {
  const text = code && FILE_ERROR_TEXT[code];
  return text ? text(name) : (message || "失败");
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (state.apiKey) headers.set("X-API-Key", state.apiKey);
  let response;
  try { response = await fetch(path, { ...options, headers }); } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(error.message, 0, "network");
  }
  if (response.status === 401) {
    const key = await askForApiKey(state.apiKey ? "API key 无效，请重新输入。" : "该服务需要 API key。");
    if (key === null) throw new ApiError("API key required", 401, "api_key_required");
    return api(path, options);
  }
  return response;
}

async function errorOf(response) {
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  return new ApiError((body && (body.msg || body.detail)) || response.statusText, response.status,
                      body && body.error_code);
}

async function apiJson(path, options = {}) {
  const response = await api(path, options);
  if (!response.ok) throw await errorOf(response);
  const body = await response.json();
  return body ? body.data : null;
}

function postJson(path, payload) {
  return apiJson(path, { method: "POST", headers: { "Content-Type": "application/json" },
                         body: JSON.stringify(payload) });
}

const kbPath = (kb) => `/knowledge_bases/${encodeURIComponent(kb)}`;
const filePath = (kb, name) => `${kbPath(kb)}/files/${encodeURIComponent(name)}`;

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

// Icons drawn inline (no icon font, no emoji font needed). Paths from Feather Icons (MIT licence).
const ICON_PATHS = {
  up: "M14 9V5a3 3 0 0 0-3-3l-4 9v11h11.28a2 2 0 0 0 2-1.7l1.38-9a2 2 0 0 0-2-2.3zM7 22H4a2 2 0 0 1-2-2v-7a2 2 0 0 1 2-2h3",
  down: "M10 15v4a3 3 0 0 0 3 3l4-9V2H5.72a2 2 0 0 0-2 1.7l-1.38 9a2 2 0 0 0 2 2.3zm7-13h2.67A2.31 2.31 0 0 1 22 4v7a2.31 2.31 0 0 1-2.33 2H17",
};

function icon(name) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "icon");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", ICON_PATHS[name]);
  svg.append(path);
  return svg;
}

function toast(message, kind = "info") {
  const node = el("div", { class: `toast ${kind}`, text: message, role: kind === "error" ? "alert" : "status" });
  $("toasts").append(node);
  setTimeout(() => node.remove(), kind === "error" ? 6000 : 2500);
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

const isPhone = () => window.innerWidth <= PHONE_WIDTH;

// Phones show one panel at a time: the knowledge base (upload, files) or the chat.
function showView(view) {
  document.body.dataset.view = view;
  for (const tab of document.querySelectorAll(".view-tab")) {
    tab.setAttribute("aria-selected", String(tab.dataset.view === view));
  }
}

// A modal built on <dialog>: fields [{name, label, type, value, ...attributes}] -> values, or null when cancelled.
// The API-key prompt has its own <dialog> (askForApiKey), so it can open on top of this one.
function openDialog({ title, text = "", fields = [], okText = "确定", danger = false, validate = null,
                      dialogId = "dialog" }) {
  const dialog = $(dialogId);
  const part = (name) => dialog.querySelector(`[data-part=${name}]`);
  part("title").textContent = title;
  part("text").textContent = text;
  part("text").hidden = !text;
  const error = part("error");
  error.hidden = true;
  const inputs = fields.map(({ label, ...field }) => el("input", { type: "text", autocomplete: "off", ...field }));
  part("fields").replaceChildren(...fields.map((field, i) => el("label", { class: "field" },
    el("span", { text: field.label }), inputs[i])));
  const ok = part("ok");
  ok.textContent = okText;
  ok.className = `btn ${danger ? "btn-danger" : "btn-primary"}`;
  ok.disabled = false;
  const form = part("form");
  return new Promise((resolve) => {
    const finish = (result) => {
      dialog.close();
      form.onsubmit = null;
      part("cancel").onclick = null;
      dialog.oncancel = null;
      resolve(result);
    };
    form.onsubmit = async (event) => {
      event.preventDefault();
      const values = Object.fromEntries(inputs.map((input) => [input.name, input.value.trim()]));
      if (validate) {
        ok.disabled = true;
        let problem;
        try { problem = await validate(values); } finally { ok.disabled = false; }
        if (problem) { error.textContent = problem; error.hidden = false; return; }
      }
      finish(values);
    };
    part("cancel").onclick = () => finish(null);
    dialog.oncancel = (event) => { event.preventDefault(); finish(null); };
    dialog.showModal();
    (inputs[0] || ok).focus();
  });
}

// A large read-only panel (a file's chunks, a PDF page).
function openViewer(title, ...content) {
  $("viewer-title").textContent = title;
  $("viewer-body").replaceChildren(...content);
  $("viewer").showModal();
  $("viewer-close").focus();
}

// ---------------------------------------------------------------------------------------------------
// API key: asked for when the server wants one; the badge shows whether one is set and lets the user change it.

let keyPrompt = null;               // one prompt at a time, however many requests got a 401

async function askForApiKey(reason) {
  if (!keyPrompt) {
    keyPrompt = openDialog({ dialogId: "key-dialog", title: "请输入 API key", text: reason, okText: "保存",
                             fields: [{ name: "key", label: "API key", type: "password" }],
                             validate: ({ key }) => (key ? null : "请输入 API key") })
      .then((values) => {
        keyPrompt = null;
        if (values === null) { showAuthStatus(); return null; }
        state.apiKey = values.key;
        localStorage.setItem(STORAGE.apiKey, values.key);
        showAuthStatus();
        return values.key;
      });
  }
  return keyPrompt;
}

function showAuthStatus() {
  const badge = $("auth-status");
  badge.hidden = !state.apiKey && !state.authRequired;
  badge.classList.toggle("missing", !state.apiKey);
  badge.textContent = state.apiKey ? "已设置 API key" : "输入 API key";
  badge.title = state.apiKey ? "更换或清除保存的 API key" : "该服务需要 API key，点击输入";
}

async function manageApiKey() {
  if (!state.apiKey) {
    if (await askForApiKey("该服务需要 API key。") !== null && await start()) await resumeJobs();
    return;
  }
  const confirmed = await openDialog({ title: "清除 API key", okText: "清除", danger: true,
    text: "确定清除这个浏览器保存的 API key 吗？清除后需要重新输入才能继续使用。" });
  if (confirmed === null) return;
  state.apiKey = "";
  localStorage.removeItem(STORAGE.apiKey);
  showAuthStatus();
  toast("已清除保存的 API key");
  if (state.authRequired) await start();
}

// Without a key the page says so and offers the prompt, instead of an empty menu and a silent 发送.
function showKeyNeeded() {
  state.kbs = [];
  state.kb = null;
  $("kb-select").replaceChildren(el("option", { value: "", text: "需要 API key" }));
  renderKbStats();
  updateEnabled();
  $("file-list").replaceChildren(el("li", { class: "empty", text: "输入 API key 后可查看文件。" }));
  $("messages").replaceChildren(el("div", { class: "welcome" },
    el("div", { class: "big", text: "🔑" }),
    el("h2", { text: "该服务需要 API key" }),
    el("div", { text: "请向管理员索取 API key，输入后即可使用知识库。" }),
    el("button", { class: "btn btn-primary", type: "button", id: "key-enter", text: "输入 API key",
                   onclick: manageApiKey })));
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
  await switchedKb();
}

async function switchedKb() {
  if (state.kb) localStorage.setItem(STORAGE.kb, state.kb);
  state.files = [];
  renderKbStats();
  updateEnabled();
  showUploadsOf(state.kb);
  loadConversations();
  await loadFiles();
}

function currentKbDetails() {
  return state.kbs.find((kb) => kb.kb_name === state.kb) || null;
}

function renderKbStats() {
  const kb = currentKbDetails();
  $("chat-title").textContent = kb ? kb.kb_name : "对话";
  if (!kb) { $("kb-stats").textContent = ""; return; }
  const indexed = state.files.filter((file) => file.status === "indexed");
  const failed = state.files.filter((file) => file.status === "failed").length;
  const busy = state.files.length - indexed.length - failed;
  const parts = [`${indexed.length} 个文件`, `${indexed.reduce((sum, file) => sum + file.chunk_count, 0)} 个片段`];
  if (busy) parts.push(`${busy} 个索引中`);
  if (failed) parts.push(`${failed} 个失败`);
  if (kb.kb_info) parts.push(kb.kb_info);
  $("kb-stats").textContent = parts.join(" · ");
}

function updateEnabled() {
  const hasKb = Boolean(state.kb);
  for (const id of ["kb-clear", "kb-delete", "question", "files-refresh", "chat-new", "conversation-select",
                    "conversation-rename", "conversation-delete", "dropzone"]) {
    $(id).disabled = !hasKb;
  }
  $("ask-button").disabled = !hasKb && !state.asking;
  $("ask-button").textContent = state.asking ? "停止" : "发送";
  $("ask-button").classList.toggle("btn-stop", Boolean(state.asking));
  $("dropzone").classList.toggle("disabled", !hasKb);
}

async function createKnowledgeBase() {
  if (state.authRequired && !state.apiKey && await askForApiKey("新建知识库需要 API key。") === null) return;
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
        if (error.code === "kb_exists") return `已存在同名知识库「${name}」`;
        return `创建失败：${errorText(error)}`;
      }
      return null;
    },
  });
  if (values === null) return;
  toast(`已新建知识库「${values.name}」`);
  await loadKnowledgeBases(values.name);
  if (isPhone()) showView("kb");
}

async function clearKnowledgeBase() {
  const kb = currentKbDetails();
  if (!kb) return;
  const confirmed = await openDialog({ title: "清空知识库",
    text: `确定清空知识库「${kb.kb_name}」吗？其中的 ${state.files.length} 个文件、全部索引以及这个知识库的对话记录都将被删除，` +
          "此操作不可恢复。",
    okText: "清空", danger: true });
  if (confirmed === null) return;
  try {
    await postJson("/knowledge_base/clear_knowledge_base", { knowledge_base_name: kb.kb_name });
    // Its conversations cite passages of files that are gone.
    localStorage.removeItem(STORAGE.conversations(kb.kb_name));
    forgetUploadsOf(kb.kb_name);
    toast(`已清空「${kb.kb_name}」`);
  } catch (error) { toast(`清空失败：${errorText(error)}`, "error"); }
  await loadKnowledgeBases();
}

async function deleteKnowledgeBase() {
  const kb = currentKbDetails();
  if (!kb) return;
  const confirmed = await openDialog({ title: "删除知识库",
    text: `确定删除知识库「${kb.kb_name}」吗？知识库本身、其中的全部文件和对话记录都将被删除，此操作不可恢复。`,
    okText: "删除", danger: true });
  if (confirmed === null) return;
  try {
    await postJson("/knowledge_base/delete_knowledge_base", { knowledge_base_name: kb.kb_name });
    localStorage.removeItem(STORAGE.conversations(kb.kb_name));
    localStorage.removeItem(STORAGE.oldChat(kb.kb_name));
    forgetUploadsOf(kb.kb_name);
    toast(`已删除「${kb.kb_name}」`);
  } catch (error) { toast(`删除失败：${errorText(error)}`, "error"); }
  state.kb = null;
  await loadKnowledgeBases();
}

// ---------------------------------------------------------------------------------------------------
// Files: status, errors in Chinese, chunks, retry, delete. The list refreshes itself while files are indexing.

async function loadFiles() {
  clearTimeout(state.filesTimer);
  const list = $("file-list");
  if (!state.kb) { list.replaceChildren(); $("file-count").textContent = ""; return; }
  const kb = state.kb;
  let files;
  try { files = await apiJson(`${kbPath(kb)}/files`); } catch (error) {
    if (kb === state.kb) list.replaceChildren(el("li", { class: "empty error", text: `无法读取文件列表：${errorText(error)}` }));
    return;
  }
  if (kb !== state.kb) return;
  state.files = files;
  renderKbStats();
  $("file-count").textContent = files.length ? `(${files.length})` : "";
  if (files.some((file) => file.status === "indexing" || file.status === "pending")) {
    state.filesTimer = setTimeout(refreshKb, FILES_POLL_MS);
  }
  if (!files.length) {
    list.replaceChildren(el("li", { class: "empty", text: "还没有文件，上传文档后即可提问。" }));
    return;
  }
  list.replaceChildren(...files.map(fileItem));
}

function fileItem(file) {
  const ext = extension(file.name);
  const meta = file.status === "indexed" ? `${file.chunk_count} 个片段 · ${formatSize(file.size)}`
                                         : formatSize(file.size);
  return el("li", { class: "file-item", "data-file": file.name, "data-status": file.status },
    el("span", { class: `file-icon ${ext}`, text: (ext || "?").slice(0, 4), "aria-hidden": "true" }),
    el("div", { class: "file-main" },
      file.status === "indexed"
        ? el("button", { class: "file-name link-button", type: "button", title: `查看「${file.name}」的切分片段`,
                         text: file.name, onclick: () => showChunks(file.name) })
        : el("div", { class: "file-name", title: file.name, text: file.name }),
      el("div", { class: "file-meta", text: meta }),
      file.error ? el("div", { class: "file-error", title: file.error,
                               text: fileErrorText(file.name, file.error_code, file.error) }) : null),
    el("span", { class: `badge ${file.status}`, text: STATUS_LABELS[file.status] || file.status }),
    file.status === "failed"
      ? el("button", { class: "file-retry", type: "button", title: `重新索引「${file.name}」`, text: "重试",
                       "aria-label": `重试 ${file.name}`, onclick: () => retryFile(file.name) }) : null,
    el("button", { class: "file-delete", type: "button", title: `删除「${file.name}」`, text: "✕",
                   "aria-label": `删除 ${file.name}`, onclick: () => deleteFile(file.name) }));
}

async function deleteFile(name) {
  const confirmed = await openDialog({ title: "删除文件", text: `确定从知识库「${state.kb}」删除「${name}」吗？`,
                                       okText: "删除", danger: true });
  if (confirmed === null) return;
  try {
    await apiJson(filePath(state.kb, name), { method: "DELETE" });
    toast(`已删除「${name}」`);
  } catch (error) { toast(`删除失败：${errorText(error)}`, "error"); }
  await refreshKb();
}

async function showChunks(name) {
  let chunks;
  try { chunks = await apiJson(`${filePath(state.kb, name)}/chunks`); } catch (error) {
    toast(`无法读取片段：${errorText(error)}`, "error");
    return;
  }
  openViewer(`「${name}」的 ${chunks.length} 个片段`, el("ol", { class: "chunk-list" }, chunks.map((chunk) =>
    el("li", { class: "chunk" },
      el("div", { class: "chunk-meta" }, `片段 ${chunk.position + 1}`,
         chunk.page ? ` · 第 ${chunk.page} 页` : "", chunk.heading ? ` · ${chunk.heading}` : ""),
      el("div", { class: "chunk-text", text: chunk.index_text })))));
}

async function retryFile(name) {
  const kb = state.kb;
  const row = uploadRow(kb, name);
  row.set("queued");
  try {
    const job = await apiJson(`${filePath(kb, name)}/retry`, { method: "POST" });
    await followJob(kb, job, [name], { [name]: row });
  } catch (error) {
    row.set("failed", { error: errorText(error) });
  }
  if (kb === state.kb) await refreshKb();
}

async function refreshKb() {
  try {
    state.kbs = await postJson("/knowledge_base/get_kb_details", {}) || [];
  } catch (error) { return; }
  await loadFiles();
}

// ---------------------------------------------------------------------------------------------------
// Upload: every picked file gets a row at once; files go one request each (their own upload progress), and the
// background job's per-file stage and chunk counters drive the bar after that. Running jobs are remembered, so a
// reload picks their rows up again.

function showUploadsOf(kb) {
  for (const row of document.querySelectorAll(".upload-item")) row.hidden = row.dataset.kb !== kb;
  updateUploadTools();
}

function forgetUploadsOf(kb) {
  for (const row of document.querySelectorAll(".upload-item")) if (row.dataset.kb === kb) row.remove();
  rememberJobs(readJson(STORAGE.jobs, []).filter((job) => job.kb !== kb));
  updateUploadTools();
}

function updateUploadTools() {
  const finished = [...document.querySelectorAll(".upload-item:not([hidden])")]
    .filter((row) => row.dataset.status === "done" || row.dataset.status === "failed");
  $("uploads-clear").hidden = finished.length === 0;
}

function clearFinishedUploads() {
  for (const row of document.querySelectorAll(".upload-item:not([hidden])")) {
    if (row.dataset.status === "done" || row.dataset.status === "failed") row.remove();
  }
  updateUploadTools();
}

function rememberJobs(jobs) { localStorage.setItem(STORAGE.jobs, JSON.stringify(jobs)); }

function uploadRow(kb, name) {
  const bar = el("span");
  const stateText = el("span", { class: "state", text: STATUS_LABELS.waiting });
  const reason = el("div", { class: "reason", hidden: true });
  const row = el("li", { class: "upload-item", "data-upload": name, "data-kb": kb, "data-status": "waiting",
                         hidden: kb !== state.kb },
    el("div", { class: "row" }, el("span", { class: "name", title: name, text: name }), stateText),
    el("div", { class: "bar", role: "progressbar", "aria-label": name, "aria-valuemin": "0", "aria-valuemax": "100" },
       bar),
    reason);
  $("upload-list").append(row);
  return {
    name,
    set(status, { percent = null, error = null, text = null } = {}) {
      row.className = `upload-item ${status}`;
      row.dataset.status = status;
      stateText.textContent = text || STATUS_LABELS[status] || status;
      if (percent !== null) {
        bar.style.width = `${percent}%`;
        bar.parentElement.setAttribute("aria-valuenow", String(Math.round(percent)));
      }
      reason.hidden = !error;
      reason.textContent = error || "";
      updateUploadTools();
    },
  };
}

// Where a file is, as the bar shows it: uploading 0-30 %, parsing 35 %, embedding 40-90 % by chunks, storing 95 %.
function showJobEntry(row, entry) {
  const status = entry.status || "queued";
  if (status === "queued") row.set("queued", { percent: 30, text: "排队中" });
  else if (status === "parsing") row.set("parsing", { percent: 35, text: "解析中" });
  else if (status === "embedding") {
    const total = entry.chunks_total || 0;
    const done = entry.chunks_done || 0;
    row.set("embedding", { percent: 40 + (total ? 50 * done / total : 0), text: `向量化 ${done}/${total} 片段` });
  } else if (status === "storing") row.set("storing", { percent: 95, text: "写入中" });
  else if (status === "indexed") row.set("done", { percent: 100, text: "已索引" });
  else if (status === "skipped") row.set("done", { percent: 100, text: "未变化，已跳过" });
  else if (status === "failed") {
    row.set("failed", { percent: 100, error: fileErrorText(row.name, entry.error_code, entry.error) });
  } else row.set("queued", { percent: 35, text: STATUS_LABELS[status] || status });
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
      else reject(new ApiError((body && body.msg) || `HTTP ${request.status}`, request.status, body && body.error_code));
    };
    request.onerror = () => reject(new ApiError("network error", 0, "network"));
    const form = new FormData();
    form.append("files", file, file.name);
    request.send(form);
  });
}

async function followJob(kb, job, names, rows) {
  const remembered = readJson(STORAGE.jobs, []).filter((item) => item.id !== job.id);
  rememberJobs([...remembered, { id: job.id, kb, names }]);
  try {
    for (;;) {
      for (const name of names) {
        const entry = (job.result && job.result.files && job.result.files[name]) || {};
        if (job.status === "failed" && !entry.error) {
          rows[name].set("failed", { percent: 100, error: job.error || "失败" });
        } else showJobEntry(rows[name], entry);
      }
      if (job.status === "done" || job.status === "failed") return job;
      await new Promise((resolve) => setTimeout(resolve, JOB_POLL_MS));
      job = await apiJson(`/jobs/${job.id}`);
      if (names.some((name) => ["indexed", "failed"].includes(job.result?.files?.[name]?.status)) && kb === state.kb) {
        refreshKb();
      }
    }
  } finally {
    rememberJobs(readJson(STORAGE.jobs, []).filter((item) => item.id !== job.id));
  }
}

async function uploadOne(kb, file, row) {
  const setUploaded = (fraction) => {
    const percent = Math.round(fraction * 100);
    row.set("uploading", { percent: fraction * 30, text: `上传中 ${percent}%` });
  };
  try {
    setUploaded(0);
    let job;
    try {
      job = await sendFile(kb, file, setUploaded);
    } catch (error) {
      if (error.status !== 401 || await askForApiKey(state.apiKey ? "API key 无效，请重新输入。" : "上传文件需要 API key。") === null) {
        throw error;
      }
      job = await sendFile(kb, file, setUploaded);
    } finally {
      state.uploadsInFlight -= 1;
    }
    await followJob(kb, job, [file.name], { [file.name]: row });
  } catch (error) {
    row.set("failed", { percent: 100, error: error.code === "too_large" ? `文件过大：${error.message}` : errorText(error) });
  }
}

async function uploadFiles(fileList) {
  const kb = state.kb;
  if (!kb) { toast("请先新建或选择一个知识库", "error"); return; }
  const queue = Array.from(fileList).map((file) => ({ file, row: uploadRow(kb, file.name) }));
  if (!queue.length) return;
  state.uploadsInFlight += queue.length;
  const worker = async () => {
    while (queue.length) {
      const { file, row } = queue.shift();
      await uploadOne(kb, file, row);
      if (kb === state.kb) await refreshKb();
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_UPLOADS, queue.length) }, worker));
}

// Jobs that were running when the page was left: their rows come back and keep following the job.
async function resumeJobs() {
  for (const remembered of readJson(STORAGE.jobs, [])) {
    let job;
    try { job = await apiJson(`/jobs/${remembered.id}`); } catch (_) {
      rememberJobs(readJson(STORAGE.jobs, []).filter((item) => item.id !== remembered.id));
      continue;
    }
    const rows = Object.fromEntries(remembered.names.map((name) => [name, uploadRow(remembered.kb, name)]));
    followJob(remembered.kb, job, remembered.names, rows).then(() => { if (remembered.kb === state.kb) refreshKb(); });
  }
}

function setUpDropzone() {
  const zone = $("dropzone");
  const input = $("file-input");
  input.accept = ACCEPTED_TYPES;
  zone.addEventListener("click", () => input.click());
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => { event.preventDefault(); zone.classList.add("dragover"); });
  }
  for (const name of ["dragleave", "drop"]) {
    zone.addEventListener(name, (event) => { event.preventDefault(); zone.classList.remove("dragover"); });
  }
  zone.addEventListener("drop", (event) => uploadFiles(event.dataTransfer.files));
  input.addEventListener("change", (event) => {
    uploadFiles(event.target.files);
    event.target.value = "";
  });
  // Files not yet sent would be lost by leaving the page: the browser asks first.
  window.addEventListener("beforeunload", (event) => {
    if (state.uploadsInFlight > 0) { event.preventDefault(); event.returnValue = ""; }
  });
}

// ---------------------------------------------------------------------------------------------------
// Conversations: several named ones per knowledge base, in localStorage. A question is saved as soon as it is
// asked, so a reload while it is being answered keeps it (marked as interrupted, with 重新生成).

function newConversation(title = "新对话") {
  return { id: `c${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`, title, turns: [],
           named: false };
}

function loadConversations() {
  const kb = state.kb;
  let stored = kb ? readJson(STORAGE.conversations(kb), null) : null;
  if (!stored && kb) {
    const old = readJson(STORAGE.oldChat(kb), []);
    stored = { active: null, list: [] };
    if (old.length) {
      const first = newConversation(old[0].question.slice(0, 20));
      first.turns = old;
      stored.list.push(first);
      localStorage.removeItem(STORAGE.oldChat(kb));
    }
  }
  state.conversations = stored || { active: null, list: [] };
  if (!state.conversations.list.length) state.conversations.list.push(newConversation());
  if (!state.conversations.list.some((c) => c.id === state.conversations.active)) {
    state.conversations.active = state.conversations.list[0].id;
  }
  for (const conversation of state.conversations.list) {
    for (const turn of conversation.turns) {
      if (turn.pending) { turn.pending = false; turn.interrupted = true; }
    }
  }
  renderConversationPicker();
  renderConversation();
}

function activeConversation() {
  return state.conversations.list.find((c) => c.id === state.conversations.active) || state.conversations.list[0];
}

// `conversations` is passed by an answer that finishes after the user switched to another knowledge base.
function saveConversations(kb = state.kb, conversations = state.conversations) {
  if (!kb) return;
  for (const conversation of conversations.list) conversation.turns = conversation.turns.slice(-MAX_TURNS);
  localStorage.setItem(STORAGE.conversations(kb), JSON.stringify(conversations));
}

function renderConversationPicker() {
  const picker = $("conversation-select");
  picker.replaceChildren(...state.conversations.list.map((c) =>
    el("option", { value: c.id, text: `${c.title}${c.turns.length ? `（${c.turns.length}）` : ""}` })));
  picker.value = state.conversations.active;
}

function startConversation() {
  const current = activeConversation();
  if (current && !current.turns.length) { $("question").focus(); return; }   // already a blank one
  const conversation = newConversation();
  state.conversations.list.unshift(conversation);
  state.conversations.list = state.conversations.list.slice(0, MAX_CONVERSATIONS);
  state.conversations.active = conversation.id;
  saveConversations();
  renderConversationPicker();
  renderConversation();
  $("question").focus();
}

async function renameConversation() {
  const conversation = activeConversation();
  const values = await openDialog({ title: "重命名对话", okText: "保存",
    fields: [{ name: "title", label: "名称", value: conversation.title, maxlength: "40" }],
    validate: ({ title }) => (title ? null : "请输入名称") });
  if (values === null) return;
  conversation.title = values.title;
  conversation.named = true;
  saveConversations();
  renderConversationPicker();
}

async function deleteConversation() {
  const conversation = activeConversation();
  const confirmed = await openDialog({ title: "删除对话", okText: "删除", danger: true,
                                       text: `确定删除对话「${conversation.title}」吗？` });
  if (confirmed === null) return;
  state.conversations.list = state.conversations.list.filter((c) => c.id !== conversation.id);
  if (!state.conversations.list.length) state.conversations.list.push(newConversation());
  state.conversations.active = state.conversations.list[0].id;
  saveConversations();
  renderConversationPicker();
  renderConversation();
}

function renderConversation() {
  const box = $("messages");
  const turns = state.kb ? activeConversation().turns : [];
  if (!turns.length) {
    box.replaceChildren(el("div", { class: "welcome" },
      el("div", { class: "big", text: "💬" }),
      el("h2", { text: state.kb ? `向「${state.kb}」提问` : "先新建一个知识库" }),
      el("div", { text: state.kb ? "答案来自知识库中的文档，每个答案都附有可展开的参考来源。"
                                 : "新建知识库并上传文档（PDF、Word 等），然后在这里提问。" })));
    return;
  }
  box.replaceChildren(...turns.flatMap((turn, index) => [userMessage(turn.question),
                                                         assistantMessage(turn, index === turns.length - 1).node]));
  box.scrollTop = box.scrollHeight;
}

// ---------------------------------------------------------------------------------------------------
// Chat: the Teco-RAG SSE endpoint read with fetch + ReadableStream; each event holds the answer so far.

function userMessage(text) {
  return el("div", { class: "msg user" }, el("div", { class: "avatar", text: "我", "aria-hidden": "true" }),
    el("div", { class: "msg-body" }, el("div", { class: "bubble", text })));
}

function assistantMessage(turn, isLast) {
  const text = el("div", { class: "bubble answer-text" });
  const extras = el("div", { class: "msg-extras" });
  const actions = el("div", { class: "msg-actions" });
  const node = el("div", { class: "msg assistant" }, el("div", { class: "avatar", text: "答", "aria-hidden": "true" }),
    el("div", { class: "msg-body" }, text, actions, extras));
  let sources = null;
  text.addEventListener("click", (event) => {
    const mark = event.target.closest("a.cite");
    if (!mark) return;
    event.preventDefault();
    if (sources) sources.open(Number(mark.dataset.cite));
  });
  const view = {
    node,
    update(current, streaming) {
      text.classList.toggle("streaming", streaming);
      const docs = current.docs || [];
      if (!current.answer && streaming) text.replaceChildren(el("span", { class: "thinking", text: "正在检索与生成…" }));
      else text.innerHTML = MarkdownRenderer.toHtml(current.answer || "", docs.length);   // escapes everything
      text.hidden = !streaming && !current.answer;
      sources = docs.length ? sourcesView(docs) : null;
      const notice = current.noticeCode ? NOTICE_TEXT[current.noticeCode] || current.notice : current.notice;
      extras.replaceChildren(...[
        notice ? el("div", { class: `notice ${current.noticeCode || ""}`, text: notice }) : null,
        current.stopped ? el("div", { class: "notice", text: "已停止生成" }) : null,
        current.interrupted ? el("div", { class: "notice", text: "回答被中断（页面在回答完成前被关闭或刷新）" }) : null,
        current.error ? el("div", { class: "msg-error", text: current.error }) : null,
        sources ? sources.node : null].filter(Boolean));
      actions.replaceChildren(...(streaming ? [] : answerActions(current, isLast)));
    },
  };
  view.update(turn, false);
  return view;
}

function answerActions(turn, isLast) {
  const buttons = [];
  if (turn.answer) {
    buttons.push(el("button", { class: "act copy", type: "button", text: "复制", title: "复制答案",
                                onclick: () => copyText(turn.answer) }));
    for (const [rating, name, title] of [[1, "up", "有帮助"], [-1, "down", "没帮助"]]) {
      buttons.push(el("button", { class: `act rate ${name}`, type: "button", title, "aria-label": title,
                                  "aria-pressed": String(turn.feedback === rating),
                                  onclick: (event) => sendFeedback(turn, rating, event.currentTarget) }, icon(name)));
    }
  }
  if (isLast && !state.asking) {
    buttons.push(el("button", { class: "act regenerate", type: "button", text: "重新生成", title: "重新回答这个问题",
                                onclick: regenerate }));
  }
  return buttons;
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (_) {                       // no clipboard API (plain http on another host): the old way
    const area = el("textarea", { class: "offscreen", readonly: true });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  toast("已复制答案");
}

async function sendFeedback(turn, rating, button) {
  const kb = state.kb;
  try {
    await postJson(`${kbPath(kb)}/feedback`, {
      question: turn.question, answer: turn.answer, rating,
      sources: (turn.docs || []).map(({ filename, page, heading, context }) => ({ filename, page, heading, context })) });
  } catch (error) { toast(`反馈未保存：${errorText(error)}`, "error"); return; }
  turn.feedback = rating;
  saveConversations(kb);
  for (const other of button.parentElement.querySelectorAll(".rate")) other.setAttribute("aria-pressed", "false");
  button.setAttribute("aria-pressed", "true");
  toast(rating > 0 ? "感谢反馈：有帮助" : "感谢反馈：已记录为没帮助");
}

// Sources are ranked: the label says how relevant, by rank, instead of a fusion score that means nothing to people.
function relevanceLabel(rank) {
  if (rank === 1) return "最相关";
  return rank <= 3 ? "较相关" : "相关";
}

function sourcesView(docs) {
  const list = el("div", { class: "sources-list", hidden: true });
  const items = docs.map((doc, i) => {
    const page = doc.page ? ` · 第 ${doc.page} 页` : "";
    const pageButton = doc.page && extension(doc.filename) === "pdf"
      ? el("button", { class: "act page-view", type: "button", text: "查看原页",
                       onclick: () => showPdfPage(doc) }) : null;
    return el("details", { class: "source", "data-source": String(i + 1) },
      el("summary", {},
        el("span", { class: "num", text: String(i + 1) }),
        el("span", { class: "where", title: doc.filename }, doc.filename, el("span", { class: "page", text: page })),
        el("span", { class: `relevance r${Math.min(i + 1, 4)}`, title: `按相关度排第 ${i + 1}`, text: relevanceLabel(i + 1) })),
      el("blockquote", {}, doc.heading ? el("span", { class: "heading", text: doc.heading }) : null, doc.context),
      pageButton ? el("div", { class: "source-actions" }, pageButton) : null);
  });
  list.append(...items);
  const label = () => `参考来源（${docs.length}）${list.hidden ? "▾" : "▴"}`;
  const toggle = el("button", { class: "sources-toggle", type: "button", "aria-expanded": "false", text: label(),
    onclick: () => {
      list.hidden = !list.hidden;
      toggle.textContent = label();
      toggle.setAttribute("aria-expanded", String(!list.hidden));
      if (!list.hidden) list.scrollIntoView({ block: "nearest", behavior: "smooth" });
    } });
  return {
    node: el("div", { class: "sources" }, toggle, list),
    open(number) {                  // a [n] mark in the answer: show source n
      const item = items[number - 1];
      if (!item) return;
      list.hidden = false;
      toggle.textContent = label();
      toggle.setAttribute("aria-expanded", "true");
      item.open = true;
      item.classList.remove("flash");
      void item.offsetWidth;
      item.classList.add("flash");
      item.scrollIntoView({ block: "nearest", behavior: "smooth" });
      item.querySelector("summary").focus();
    },
  };
}

async function showPdfPage(doc) {
  const url = `${filePath(state.kb, doc.filename)}/pages/${doc.page}?highlight=${encodeURIComponent(doc.context.slice(0, 4000))}`;
  let blob;
  try {
    const response = await api(url);
    if (!response.ok) throw await errorOf(response);
    blob = await response.blob();
  } catch (error) { toast(`无法显示原页：${errorText(error)}`, "error"); return; }
  const image = el("img", { class: "page-image", alt: `${doc.filename} 第 ${doc.page} 页，引用段落以黄色标出`,
                            src: URL.createObjectURL(blob) });
  image.addEventListener("load", () => {
    const mark = image.parentElement;
    if (mark) mark.scrollTop = 0;
  }, { once: true });
  openViewer(`${doc.filename} · 第 ${doc.page} 页`, el("p", { class: "muted small", text: "黄色标出的是被引用的段落。" }), image);
}

function historyPairs(turns) {
  return turns.filter((turn) => turn.answer && !turn.error && !turn.stopped)
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
  if (state.authRequired && !state.apiKey && await askForApiKey("提问需要 API key。") === null) return;
  const kb = state.kb;
  const conversations = state.conversations;
  const conversation = activeConversation();
  const history = historyPairs(conversation.turns);
  if (!conversation.turns.length) $("messages").replaceChildren();
  const turn = { question, answer: "", docs: [], notice: null, noticeCode: null, error: null, pending: true };
  conversation.turns.push(turn);
  if (!conversation.named && conversation.turns.length === 1) conversation.title = question.slice(0, 20);
  saveConversations(kb, conversations);                      // kept even if the page goes away mid-answer
  renderConversationPicker();
  const box = $("messages");
  for (const old of box.querySelectorAll(".msg-actions .regenerate")) old.remove();
  const view = assistantMessage(turn, true);
  box.append(userMessage(question), view.node);
  view.update(turn, true);
  box.scrollTop = box.scrollHeight;
  const controller = new AbortController();
  state.asking = controller;
  updateEnabled();
  try {
    const response = await api("/chat/knowledge_base_chat", {
      method: "POST", headers: { "Content-Type": "application/json" }, signal: controller.signal,
      body: JSON.stringify({ query: question, knowledge_base_name: kb, history, stream: true, return_docs: true,
                             ...retrievalOptions() }),
    });
    if (!response.ok) throw await errorOf(response);
    await readEvents(response, (event) => {
      turn.answer = event.notice_code === "kb_empty" ? "" : event.result || "";
      if (event.docs) turn.docs = event.docs;
      if (event.notice) { turn.notice = event.notice; turn.noticeCode = event.notice_code || null; }
      if (event.error) turn.error = `出错了：${errorText(new ApiError(event.error, event.code, event.error_code))}`;
      view.update(turn, true);
      box.scrollTop = box.scrollHeight;
    });
  } catch (error) {
    if (error.name === "AbortError") turn.stopped = true;
    else turn.error = `出错了：${errorText(error)}`;
  } finally {
    turn.pending = false;
    state.asking = null;
    updateEnabled();
    view.update(turn, false);
    saveConversations(kb, conversations);
    if (kb === state.kb) renderConversationPicker();
    if (!turn.stopped) box.scrollTop = box.scrollHeight;
  }
}

function stopAnswer() {
  if (state.asking) state.asking.abort();
}

function regenerate() {
  const conversation = activeConversation();
  const last = conversation.turns.pop();
  if (!last) return;
  saveConversations();
  renderConversation();
  ask(last.question);
}

function setUpAskForm() {
  const input = $("question");
  const submit = () => {
    if (state.asking) { stopAnswer(); return; }
    const question = input.value.trim();
    if (!question) return;
    input.value = "";
    autoSize();
    ask(question);
  };
  const autoSize = () => { input.style.height = "auto"; input.style.height = `${Math.min(input.scrollHeight, 160)}px`; };
  input.addEventListener("input", autoSize);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (!state.asking) submit();
    }
  });
  $("ask-form").addEventListener("submit", (event) => { event.preventDefault(); submit(); });
}

// ---------------------------------------------------------------------------------------------------
// Retrieval settings (sent with every question)

// Only what the user set is sent; otherwise the server's configuration decides.
function retrievalOptions() {
  const options = {};
  if (state.settings.topK !== null) options.top_k = state.settings.topK;
  if (state.settings.scoreThreshold !== null) options.score_threshold = state.settings.scoreThreshold;
  return options;
}

async function openSettings() {
  const shown = (value) => (value === null ? "" : String(value));
  const values = await openDialog({
    title: "检索设置", okText: "保存",
    text: "参考来源的数量，以及丢弃得分过低段落的阈值（融合得分，通常在 0.01–0.05 之间）。留空则使用服务器的配置。",
    fields: [{ name: "topK", label: "参考来源数量（1–20）", type: "number", min: "1", max: "20", step: "1",
               placeholder: "服务器默认", value: shown(state.settings.topK) },
             { name: "scoreThreshold", label: "分数阈值（0–1）", type: "number", min: "0", max: "1", step: "0.001",
               placeholder: "服务器默认", value: shown(state.settings.scoreThreshold) }],
    validate: ({ topK, scoreThreshold }) => {
      if (topK && !(Number.isInteger(Number(topK)) && Number(topK) >= 1 && Number(topK) <= 20)) {
        return "参考来源数量应为 1 到 20 的整数";
      }
      if (scoreThreshold && !(Number(scoreThreshold) >= 0 && Number(scoreThreshold) <= 1)) {
        return "分数阈值应在 0 到 1 之间";
      }
      return null;
    },
  });
  if (values === null) return;
  state.settings = { topK: values.topK ? Number(values.topK) : null,
                     scoreThreshold: values.scoreThreshold ? Number(values.scoreThreshold) : null };
  localStorage.setItem(STORAGE.settings, JSON.stringify(state.settings));
  toast(`已保存：参考来源 ${state.settings.topK ?? "按服务器配置"}` +
        (state.settings.scoreThreshold !== null ? `，阈值 ${state.settings.scoreThreshold}` : ""));
}

// ---------------------------------------------------------------------------------------------------

// Loads the page's data; false when it could not (no API key given).
async function start() {
  try {
    const health = await (await fetch("/health")).json();
    state.authRequired = Boolean(health.data && health.data.auth_required);
  } catch (_) { /* the API calls below report it */ }
  showAuthStatus();
  if (state.authRequired && !state.apiKey && await askForApiKey("该服务需要 API key。") === null) {
    showKeyNeeded();
    return false;
  }
  try {
    await loadKnowledgeBases();
  } catch (error) {
    if (error.code === "api_key_required") showKeyNeeded();
    else toast(`无法连接服务：${errorText(error)}`, "error");
    return false;
  }
  if (isPhone()) showView(state.kb && state.files.some((file) => file.status === "indexed") ? "chat" : "kb");
  return true;
}

async function main() {
  showView("chat");
  $("auth-status").addEventListener("click", manageApiKey);
  $("kb-new").addEventListener("click", createKnowledgeBase);
  $("kb-clear").addEventListener("click", clearKnowledgeBase);
  $("kb-delete").addEventListener("click", deleteKnowledgeBase);
  $("files-refresh").addEventListener("click", refreshKb);
  $("uploads-clear").addEventListener("click", clearFinishedUploads);
  $("chat-new").addEventListener("click", startConversation);
  $("conversation-rename").addEventListener("click", renameConversation);
  $("conversation-delete").addEventListener("click", deleteConversation);
  $("settings-open").addEventListener("click", openSettings);
  $("viewer-close").addEventListener("click", () => $("viewer").close());
  $("conversation-select").addEventListener("change", (event) => {
    state.conversations.active = event.target.value;
    saveConversations();
    renderConversation();
  });
  $("kb-select").addEventListener("change", async (event) => {
    if (!event.target.value) return;
    state.kb = event.target.value;
    await switchedKb();
  });
  for (const tab of document.querySelectorAll(".view-tab")) {
    tab.addEventListener("click", () => showView(tab.dataset.view));
  }
  setUpDropzone();
  setUpAskForm();
  if (await start()) await resumeJobs();
}

main();
