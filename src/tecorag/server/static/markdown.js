// A small, safe Markdown renderer for answers (hand-rolled, no dependency): the text is HTML-escaped FIRST, then a
// few rules add a fixed set of tags (headings, paragraphs, lists, quotes, code, tables, bold, italic, rules).
// Nothing from the text can become a tag or an attribute: there are no links or images, and `[n]` citation marks
// become <a class="cite" data-cite="n"> only for 1 <= n <= the number of sources.
"use strict";

const MarkdownRenderer = (() => {
  const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  const escapeHtml = (text) => text.replace(/[&<>"']/g, (char) => ESCAPES[char]);

  // Inline rules on already-escaped text. Code spans are cut out first so their content stays literal.
  function inline(escaped, sourceCount) {
    const codes = [];
    let text = escaped.replace(/`([^`\n]+)`/g, (_, code) => { codes.push(code); return `\u0000${codes.length - 1}\u0000`; });
    text = text
      .replace(/\*\*([^*\n]+?)\*\*/g, "<strong>$1</strong>")
      .replace(/__([^_\n]+?)__/g, "<strong>$1</strong>")
      .replace(/(^|[^*\w])\*([^*\n]+?)\*(?!\*)/g, "$1<em>$2</em>")
      .replace(/~~([^~\n]+?)~~/g, "<del>$1</del>")
      .replace(/\[(\d{1,3})\]/g, (mark, number) => {
        const n = Number(number);
        return n >= 1 && n <= sourceCount
          ? `<a class="cite" href="#" data-cite="${n}" title="查看来源 ${n}">[${n}]</a>` : mark;
      });
    return text.replace(/\u0000(\d+)\u0000/g, (_, index) => `<code>${codes[Number(index)]}</code>`);
  }

  const isTableRow = (line) => /^\s*\|.*\|\s*$/.test(line);
  const isTableRule = (line) => /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/.test(line);
  const cells = (line) => line.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map((cell) => cell.trim());

  function toHtml(markdown, sourceCount = 0) {
    const lines = escapeHtml(String(markdown || "")).replace(/\r\n?/g, "\n").split("\n");
    const out = [];
    let paragraph = [];
    const flush = () => {
      if (paragraph.length) out.push(`<p>${paragraph.map((line) => inline(line, sourceCount)).join("<br>")}</p>`);
      paragraph = [];
    };
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      let match;
      if (/^\s*```/.test(line)) {                               // fenced code: kept literally, to the closing fence
        flush();
        const code = [];
        while (++i < lines.length && !/^\s*```/.test(lines[i])) code.push(lines[i]);
        out.push(`<pre><code>${code.join("\n")}</code></pre>`);
      } else if ((match = /^(#{1,6})\s+(.*)$/.exec(line))) {
        flush();
        const level = Math.min(match[1].length + 2, 6);         // answers are small: # becomes h3
        out.push(`<h${level}>${inline(match[2], sourceCount)}</h${level}>`);
      } else if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
        flush();
        out.push("<hr>");
      } else if (/^\s*&gt;\s?/.test(line)) {
        flush();
        const quoted = [];
        for (; i < lines.length && /^\s*&gt;\s?/.test(lines[i]); i++) quoted.push(lines[i].replace(/^\s*&gt;\s?/, ""));
        i--;
        out.push(`<blockquote>${toHtmlFromEscaped(quoted, sourceCount)}</blockquote>`);
      } else if (/^\s*([-*+]|\d{1,3}[.)])\s+/.test(line)) {
        flush();
        const ordered = /^\s*\d/.test(line);
        const marker = ordered ? /^\s*\d{1,3}[.)]\s+/ : /^\s*[-*+]\s+/;
        const items = [];
        for (; i < lines.length && marker.test(lines[i]); i++) {
          items.push(`<li>${inline(lines[i].replace(marker, ""), sourceCount)}</li>`);
        }
        i--;
        out.push(ordered ? `<ol>${items.join("")}</ol>` : `<ul>${items.join("")}</ul>`);
      } else if (isTableRow(line) && i + 1 < lines.length && isTableRule(lines[i + 1])) {
        flush();
        const head = cells(line).map((cell) => `<th>${inline(cell, sourceCount)}</th>`).join("");
        const body = [];
        for (i += 2; i < lines.length && isTableRow(lines[i]); i++) {
          body.push(`<tr>${cells(lines[i]).map((cell) => `<td>${inline(cell, sourceCount)}</td>`).join("")}</tr>`);
        }
        i--;
        out.push(`<table><thead><tr>${head}</tr></thead><tbody>${body.join("")}</tbody></table>`);
      } else if (!line.trim()) {
        flush();
      } else {
        paragraph.push(line);
      }
    }
    flush();
    return out.join("");
  }

  // Quoted lines are already escaped: render them without escaping twice.
  function toHtmlFromEscaped(lines, sourceCount) {
    const unescaped = lines.join("\n").replace(/&(amp|lt|gt|quot|#39);/g,
      (entity) => ({ "&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#39;": "'" })[entity]);
    return toHtml(unescaped, sourceCount);
  }

  return { toHtml, escapeHtml };
})();
