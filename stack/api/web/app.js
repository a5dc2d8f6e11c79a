// ragctl's page for colleagues: ask (streamed, with sources), upload (per-file progress), documents.
// No framework, no build step.  Text from users, files and documents is set with textContent only.
"use strict";

const TEXT = {
  ko: {
    skip: "질문으로 건너뛰기", title: "문서에 묻기", other: "English",
    "key.title": "API 키", "key.label": "API 키 (관리자에게 받은 키, 또는 프로젝트 .env의 RAG_API_KEY)", "key.save": "사용",
    "key.forget": "지우기", "key.none": "먼저 API 키를 넣으세요.",
    "key.ok": "키를 이 탭에 보관했습니다 ({role}).", "role.admin": "관리자 키", "role.ask": "질문 전용 키", "role.editor": "편집자 키",
    "coll.label": "컬렉션 (질문하고 올릴 문서 모음)", "key.forgotten": "키를 지웠습니다.",
    "ask.title": "질문", "ask.label": "문서에 대한 질문", "ask.submit": "묻기", "ask.sources": "출처",
    "ask.asking": "답을 찾는 중…", "ask.done": "답변 완료 (출처 {n}개).", "ask.none": "출처 없음",
    "ask.open": "{n}번 출처 보기",
    "passage.close": "닫기", "passage.page": "{p}쪽",
    "upload.title": "문서 올리기", "upload.drop": "여기에 파일을 끌어다 놓거나 고르세요 (HWP, HWPX, PDF, DOCX, 텍스트).",
    "upload.choose": "파일 고르기", "upload.sending": "보내는 중", "upload.duplicate": "이미 있는 문서입니다",
    "docs.title": "문서", "docs.refresh": "새로 고침", "docs.name": "파일", "docs.status": "상태", "docs.chunks": "조각",
    "docs.actions": "작업", "docs.delete": "삭제", "docs.confirm": "{name} 문서를 지울까요?", "docs.empty": "문서가 없습니다.",
    "docs.deleted": "{name} 문서를 지웠습니다.", "docs.lost": "일부 못 읽음",
    "err.401": "API 키가 없거나, 틀렸거나, 폐기되었습니다. 관리자에게 받은 키(ragctl keys create)나 프로젝트 .env 파일의 RAG_API_KEY 값을 위에 넣으세요.",
    "err.403": "이 키로는 할 수 없는 일입니다 (예: 질문 전용 키는 올리거나 지울 수 없습니다). 관리자에게 문의하세요.",
    "err.network": "서버에 연결할 수 없습니다: {msg}",
    "status.queued": "대기", "status.parsing": "읽는 중", "status.chunking": "나누는 중", "status.embedding": "임베딩 중",
    "status.storing": "저장 중", "status.done": "완료", "status.failed": "실패", "status.cancelled": "취소됨",
  },
  en: {
    skip: "Skip to the question", title: "Ask the documents", other: "한국어",
    "key.title": "API key", "key.label": "API key (one your administrator made for you, or RAG_API_KEY in the project's .env)", "key.save": "Use",
    "key.forget": "Forget", "key.none": "Enter the API key first.",
    "key.ok": "Key kept for this tab ({role}).", "role.admin": "admin key", "role.ask": "ask-only key", "role.editor": "editor key",
    "coll.label": "Collection (the documents you ask and upload to)", "key.forgotten": "Key forgotten.",
    "ask.title": "Question", "ask.label": "Your question about the documents", "ask.submit": "Ask",
    "ask.sources": "Sources", "ask.asking": "Looking for the answer…", "ask.done": "Answered ({n} sources).",
    "ask.none": "No sources", "ask.open": "Open source {n}",
    "passage.close": "Close", "passage.page": "page {p}",
    "upload.title": "Upload documents", "upload.drop": "Drop files here or choose them (HWP, HWPX, PDF, DOCX, text).",
    "upload.choose": "Choose files", "upload.sending": "sending", "upload.duplicate": "already there",
    "docs.title": "Documents", "docs.refresh": "Refresh", "docs.name": "File", "docs.status": "Status",
    "docs.chunks": "Chunks", "docs.actions": "Actions", "docs.delete": "Delete", "docs.confirm": "Delete {name}?",
    "docs.empty": "No documents yet.", "docs.deleted": "{name} deleted.", "docs.lost": "parts not read",
    "err.401": "The API key is missing, wrong or revoked. Enter a key your administrator made for you (ragctl keys create) or the RAG_API_KEY value from the project's .env file above.",
    "err.403": "This key may not do that (an ask-only key cannot upload or delete, for one). Ask an administrator.",
    "err.network": "Cannot reach the server: {msg}",
    "status.queued": "queued", "status.parsing": "parsing", "status.chunking": "chunking", "status.embedding": "embedding",
    "status.storing": "storing", "status.done": "done", "status.failed": "failed", "status.cancelled": "cancelled",
  },
};
const TERMINAL = new Set(["done", "failed", "cancelled"]);
const KEY = "ragctl.key";
const LANG = "ragctl.lang";
const COLLECTION = "ragctl.collection";
const $ = (id) => document.getElementById(id);

let lang = sessionStorage.getItem(LANG) || ((navigator.language || "").toLowerCase().startsWith("ko") ? "ko" : "en");
let role = null;        // "admin", another role, or null (not known yet)
let sources = [];       // the last answer's sources (the ragctl extension field)
let collection = null;  // the chosen collection (one the key may see), or null: the key's default

function t(id, values) {
  let text = (TEXT[lang] && TEXT[lang][id]) || TEXT.en[id] || id;
  for (const [name, value] of Object.entries(values || {})) text = text.split(`{${name}}`).join(String(value));
  return text;
}

function applyLanguage() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  const toggle = $("lang");
  toggle.textContent = t("other");
  toggle.lang = lang === "ko" ? "en" : "ko";
  for (const el of document.querySelectorAll("[data-status]")) {
    if (el.classList.contains("state")) el.textContent = t(`status.${el.dataset.status}`);
  }
}

// -- talking to the API --------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function headers(extra) {
  const key = sessionStorage.getItem(KEY);
  return key ? { Authorization: `Bearer ${key}`, ...(extra || {}) } : { ...(extra || {}) };
}

// The message to show for a failed response: 401/403 in plain words, else the API's own message
// (the JSON envelope {"error": {"message", "hint"}}; the /v1 routes answer {"error": {"message"}}).
async function failure(response) {
  if (response.status === 401) return new ApiError(401, t("err.401"));
  if (response.status === 403) return new ApiError(403, t("err.403"));
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) {
      message = body.error.message + (body.error.hint ? ` (${body.error.hint})` : "");
    }
  } catch (_) { /* not JSON: the status line says it */ }
  return new ApiError(response.status, message);
}

async function call(path, options) {
  let response;
  try {
    response = await fetch(path, { ...(options || {}), headers: headers((options || {}).headers) });
  } catch (exc) {
    throw new ApiError(0, t("err.network", { msg: exc.message }));
  }
  if (!response.ok) throw await failure(response);
  return response;
}

function show(el, message, isError) {
  el.textContent = message || "";
  el.classList.toggle("error", Boolean(isError));
}

// -- the key -------------------------------------------------------------------------------------
async function loadRole() {
  // GET /api/whoami → {"name", "role"}; a server without that route (404) has one key: the admin's.
  try {
    const response = await fetch("api/whoami", { headers: headers() });
    if (response.status === 404) return "admin";
    if (!response.ok) throw await failure(response);
    return (await response.json()).role || "admin";
  } catch (exc) {
    if (exc instanceof ApiError) throw exc;
    throw new ApiError(0, t("err.network", { msg: exc.message }));
  }
}

async function loadCollections() {
  // GET /api/collections → the collections this key may see, and nothing else: the picker's options.
  const select = $("collection");
  let names = [];
  let preferred = null;
  try {
    const found = (await (await call("api/collections")).json()).filter((c) => c.state !== "deleting");
    names = found.map((c) => c.name);
    preferred = (found.find((c) => c.default) || {}).name || null;
  } catch (exc) {
    if (!(exc instanceof ApiError) || exc.status !== 404) throw exc;  // a server from before collections
  }
  select.replaceChildren();
  for (const name of names) {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = name;
    select.append(option);
  }
  const kept = sessionStorage.getItem(COLLECTION);
  collection = names.includes(kept) ? kept : (preferred || names[0] || null);
  if (collection) select.value = collection;
  $("collection-row").hidden = names.length === 0;
}

async function useKey() {
  const status = $("key-status");
  try {
    role = await loadRole();
    await loadCollections();
    await refreshDocuments();
    show(status, t("key.ok", { role: TEXT[lang][`role.${role}`] || role }));
    status.dataset.role = role;
  } catch (exc) {
    role = null;
    show(status, exc.message, true);
    status.dataset.role = "";
  }
  $("key-forget").hidden = !sessionStorage.getItem(KEY);
}

// -- asking --------------------------------------------------------------------------------------
const CITATION = /\[(\d+(?:\s*,\s*\d+)*)\]/g;
// The streamed text ends with a plain "Sources" list for chat clients; the page lists them itself.
const SOURCES_BLOCK = /\n\n(?:출처|Sources):\n/;

function answerText(full) {
  const match = SOURCES_BLOCK.exec(full);
  return match ? full.slice(0, match.index) : full;
}

function renderAnswer(full) {
  const box = $("answer");
  box.replaceChildren();
  const text = answerText(full);
  const known = new Set(sources.map((s) => s.n));
  let last = 0;
  for (const match of text.matchAll(CITATION)) {
    box.append(document.createTextNode(text.slice(last, match.index)));
    const numbers = match[1].split(",").map((n) => Number(n.trim()));
    box.append("[");
    numbers.forEach((n, i) => {
      if (i) box.append(", ");
      if (known.has(n)) {
        const link = document.createElement("a");
        link.href = `#source-${n}`;
        link.className = "cite";
        link.textContent = String(n);
        link.setAttribute("aria-label", t("ask.open", { n }));
        link.addEventListener("click", (event) => { event.preventDefault(); openPassage(n); });
        box.append(link);
      } else {
        box.append(String(n));
      }
    });
    box.append("]");
    last = match.index + match[0].length;
  }
  box.append(document.createTextNode(text.slice(last)));
  box.hidden = false;
}

function whereOf(source) {
  const parts = [];
  if (source.page) parts.push(t("passage.page", { p: source.page }));
  const where = source.heading || source.section;  // a heading path, else the parser's section label
  if (where) parts.push(where);
  return parts.join(" · ");
}

function renderSources() {
  const list = $("sources");
  list.replaceChildren();
  for (const source of sources) {
    const item = document.createElement("li");
    item.id = `source-${source.n}`;
    item.value = source.n;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "source";
    button.dataset.n = source.n;
    const name = document.createElement("span");
    name.className = "file";
    name.textContent = source.file;
    const where = document.createElement("span");
    where.className = "where";
    where.textContent = whereOf(source);
    button.append(name, where);
    button.addEventListener("click", () => openPassage(source.n));
    item.append(button);
    list.append(item);
  }
  $("sources-box").hidden = sources.length === 0;
}

function openPassage(n) {
  const source = sources.find((s) => s.n === n);
  if (!source) return;
  $("passage-title").textContent = `[${n}] ${source.file}`;
  $("passage-where").textContent = whereOf(source);
  $("passage-text").textContent = source.text || "";
  const panel = $("passage");
  panel.dataset.n = n;
  panel.dataset.chunk = source.chunk_id || "";
  panel.hidden = false;
  panel.focus();
  panel.scrollIntoView({ block: "nearest" });
}

async function ask(question) {
  const status = $("ask-status");
  const button = $("ask-button");
  sources = [];
  renderSources();
  $("passage").hidden = true;
  $("answer").hidden = true;
  $("answer").dataset.chunks = "0";
  $("answer").dataset.state = "streaming";
  show(status, t("ask.asking"));
  button.disabled = true;
  let full = "";
  let pieces = 0;
  try {
    const response = await call("v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify({ model: collection ? `ragctl/${collection}` : "ragctl", stream: true,
                             messages: [{ role: "user", content: question }] }),
    });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
        if (!data || data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new ApiError(500, chunk.error.message || String(chunk.error));
        const choice = (chunk.choices || [])[0];
        if (choice && choice.delta && choice.delta.content) {
          full += choice.delta.content;
          pieces += 1;
          $("answer").dataset.chunks = String(pieces);
          renderAnswer(full);
        }
        if (chunk.ragctl) {
          sources = chunk.ragctl.sources || [];
          renderSources();
          renderAnswer(full);
        }
      }
    }
    $("answer").dataset.state = "done";
    show(status, sources.length ? t("ask.done", { n: sources.length }) : t("ask.none"));
  } catch (exc) {
    $("answer").dataset.state = "failed";
    show(status, exc.message, true);
  } finally {
    button.disabled = false;
  }
}

// -- uploading -----------------------------------------------------------------------------------
function uploadRow(file) {
  const item = document.createElement("li");
  item.className = "upload";
  item.dataset.file = file.name;
  const name = document.createElement("span");
  name.className = "file";
  name.textContent = file.name;
  const state = document.createElement("span");
  state.className = "state";
  state.textContent = t("upload.sending");
  const bar = document.createElement("progress");
  bar.max = 1;
  bar.value = 0;
  bar.setAttribute("aria-label", file.name);
  const message = document.createElement("p");
  message.className = "message";
  item.append(name, state, bar, message);
  $("uploads").append(item);
  return { item, state, bar, message };
}

function setStage(row, record) {
  row.item.dataset.status = record.status;
  row.state.dataset.status = record.status;
  row.state.textContent = t(`status.${record.status}`);
  row.bar.value = record.status === "done" ? 1 : Number(record.progress || 0);
  if (record.status === "failed") {
    row.item.classList.add("error");
    row.message.textContent = record.error || record.error_code || "";
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function uploadOne(file) {
  const row = uploadRow(file);
  try {
    const form = new FormData();
    form.append("files", file, file.name);
    if (collection) form.append("collection", collection);
    const response = await call("api/documents", { method: "POST", body: form });
    const body = await response.json();
    if ((body.rejected || []).length && !(body.documents || []).length) {
      throw new ApiError(422, body.rejected[0].message);
    }
    const entry = body.documents[0];
    setStage(row, entry);
    if (entry.duplicate) row.message.textContent = t("upload.duplicate");
    let record = entry;
    while (!TERMINAL.has(record.status) && entry.task_id) {
      await sleep(600);
      record = await (await call(`api/tasks/${encodeURIComponent(entry.task_id)}`)).json();
      setStage(row, record);
    }
  } catch (exc) {
    row.item.dataset.status = "error";
    row.item.classList.add("error");
    row.state.textContent = t("status.failed");
    row.message.textContent = exc.message;
  }
}

async function uploadAll(files) {
  const list = $("uploads");
  list.dataset.busy = "1";
  try {
    await Promise.all(Array.from(files).map(uploadOne));
    await refreshDocuments();
  } catch (exc) {
    show($("docs-status"), exc.message, true);
  } finally {
    delete list.dataset.busy;
  }
}

// -- documents -----------------------------------------------------------------------------------
async function refreshDocuments() {
  const query = collection ? `?collection=${encodeURIComponent(collection)}` : "";
  const documents = await (await call(`api/documents${query}`)).json();
  const body = document.querySelector("#docs tbody");
  body.replaceChildren();
  for (const doc of documents) {
    const row = document.createElement("tr");
    row.dataset.id = doc.id;
    row.dataset.status = doc.status;
    const name = document.createElement("td");
    name.textContent = doc.file_name;
    if (doc.error) {
      const why = document.createElement("span");
      why.className = "message";
      why.textContent = doc.error;
      name.append(document.createElement("br"), why);
    }
    const lost = doc.report && doc.report.summary;
    if (lost) {  // parts the parser could not read: a marker, the list in its tooltip
      const mark = document.createElement("span");
      mark.className = "lost";
      mark.dataset.i18n = "docs.lost";
      mark.textContent = t("docs.lost");
      mark.title = [lost, ...doc.report.findings.map((f) => `${f.where || "—"}: ${f.reason} (×${f.count})`)].join("\n");
      mark.setAttribute("aria-label", `${t("docs.lost")}: ${lost}`);
      name.append(" ", mark);
    }
    const state = document.createElement("td");
    const label = document.createElement("span");
    label.className = "state";
    label.dataset.status = doc.status;
    label.textContent = t(`status.${doc.status}`);
    state.append(label);
    const chunks = document.createElement("td");
    chunks.textContent = String(doc.chunks);
    const actions = document.createElement("td");
    if (role === "admin" || role === "editor") {
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "delete";
      remove.textContent = t("docs.delete");
      remove.setAttribute("aria-label", `${t("docs.delete")}: ${doc.file_name}`);
      remove.addEventListener("click", () => deleteDocument(doc));
      actions.append(remove);
    }
    row.append(name, state, chunks, actions);
    body.append(row);
  }
  show($("docs-status"), documents.length ? "" : t("docs.empty"));
}

async function deleteDocument(doc) {
  if (!window.confirm(t("docs.confirm", { name: doc.file_name }))) return;
  try {
    await call(`api/documents/${encodeURIComponent(doc.id)}?collection=${encodeURIComponent(doc.collection)}`,
      { method: "DELETE" });
    await refreshDocuments();
    show($("docs-status"), t("docs.deleted", { name: doc.file_name }));
  } catch (exc) {
    show($("docs-status"), exc.message, true);
  }
}

// -- wiring --------------------------------------------------------------------------------------
function needKey(status) {
  if (sessionStorage.getItem(KEY)) return false;
  show(status, t("key.none"), true);
  $("key").focus();
  return true;
}

function init() {
  applyLanguage();
  $("lang").addEventListener("click", () => {
    lang = lang === "ko" ? "en" : "ko";
    sessionStorage.setItem(LANG, lang);
    applyLanguage();
    if (sessionStorage.getItem(KEY)) useKey();
  });
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("key").value.trim();
    if (!value) return;
    sessionStorage.setItem(KEY, value);
    $("key").value = "";
    useKey();
  });
  $("key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    role = null;
    $("key-forget").hidden = true;
    document.querySelector("#docs tbody").replaceChildren();
    show($("key-status"), t("key.forgotten"));
    $("key").focus();
  });
  $("ask-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const question = $("question").value.trim();
    if (!question || needKey($("ask-status"))) return;
    ask(question);
  });
  $("collection").addEventListener("change", () => {
    collection = $("collection").value || null;
    if (collection) sessionStorage.setItem(COLLECTION, collection);
    refreshDocuments().catch((exc) => show($("docs-status"), exc.message, true));
  });
  $("passage-close").addEventListener("click", () => {
    const n = Number($("passage").dataset.n);
    $("passage").hidden = true;
    const back = document.querySelector(`#source-${n} button`);
    if (back) back.focus();
  });
  $("files").addEventListener("change", () => {
    const files = $("files").files;
    if (files.length && !needKey($("docs-status"))) uploadAll(files).finally(() => { $("files").value = ""; });
  });
  const drop = $("drop");
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    const files = event.dataTransfer && event.dataTransfer.files;
    if (files && files.length && !needKey($("docs-status"))) uploadAll(files);
  });
  $("docs-refresh").addEventListener("click", () => {
    if (!needKey($("docs-status"))) refreshDocuments().catch((exc) => show($("docs-status"), exc.message, true));
  });
  if (sessionStorage.getItem(KEY)) useKey();
}

init();
