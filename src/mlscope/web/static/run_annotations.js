// The run's note (Markdown description, shown rendered; edited in a textarea with a preview) and its tags
// (add, edit, remove the user's; mlscope's and MLflow's system tags read-only). Every change goes through the
// JSON API (token-protected) and the answer, the run's new note and tags, is drawn in place.
import {api, el, mutate, path} from "./common.js";
import {safeFragment} from "./safe_html.js";

export function annotations(root, runId) {
  const $ = (selector) => root.querySelector(selector);
  const url = (...parts) => `/api/runs/${path(runId)}/${parts.join("/")}`;
  let editable = false;
  let current = null;

  function showError(node, error) {
    node.textContent = error ? error.message : "";
    node.hidden = !error;
  }

  async function busy(buttons, task) {
    for (const button of buttons) button.disabled = true;
    try {
      return await task();
    } finally {
      for (const button of buttons) button.disabled = false;
    }
  }

  // ---- note ----

  const editor = $("[data-note-editor]");
  const input = $("[data-note-input]");
  const preview = $("[data-note-preview]");
  const noteError = $("[data-note-error]");

  function renderNote() {
    const note = current.note;
    const body = $("[data-note-body]");
    body.replaceChildren(note ? safeFragment(note.html) : "");
    body.hidden = !note || !editor.hidden;
    $("[data-note-empty]").hidden = Boolean(note) || !editor.hidden;
    const edit = $("[data-note-edit]");
    edit.textContent = note ? "Edit" : "Add a description";
    edit.hidden = !editable || !editor.hidden;
  }

  function mode(previewing) {
    input.hidden = previewing;
    preview.hidden = !previewing;
    for (const tab of root.querySelectorAll("[data-note-tab]")) {
      tab.setAttribute("aria-pressed", String((tab.dataset.noteTab === "preview") === previewing));
    }
  }

  function openEditor(open) {
    editor.hidden = !open;
    showError(noteError, null);
    if (open) {
      input.value = current.note ? current.note.content : "";
      mode(false);
      input.focus();
    }
    renderNote();
  }

  async function showPreview() {
    mode(true);
    preview.replaceChildren(el("p", {class: "muted"}, "Rendering…"));
    try {
      const {html} = await api("/api/markdown", {method: "POST", body: {content: input.value}});
      preview.replaceChildren(input.value.trim() ? safeFragment(html) : el("p", {class: "muted"}, "Nothing to preview."));
      preview.dataset.rendered = "true";
      showError(noteError, null);
    } catch (error) {
      preview.replaceChildren();
      showError(noteError, error);
    }
  }

  async function saveNote() {
    try {
      const answer = await busy(editor.querySelectorAll("button"),
                                () => mutate(url("note"), {content: input.value}));
      current = answer;
      openEditor(false);
      renderTags();
    } catch (error) {
      showError(noteError, error);
    }
  }

  $("[data-note-edit]").addEventListener("click", () => openEditor(true));
  $("[data-note-cancel]").addEventListener("click", () => openEditor(false));
  $("[data-note-save]").addEventListener("click", saveNote);
  $("[data-note-tab='write']").addEventListener("click", () => { mode(false); input.focus(); });
  $("[data-note-tab='preview']").addEventListener("click", showPreview);
  input.addEventListener("input", () => { delete preview.dataset.rendered; });

  // ---- tags ----

  const tagError = $("[data-tag-error]");

  async function change(buttons, route, body) {
    try {
      current = await busy(buttons, () => mutate(url(...route), body));
      showError(tagError, null);
      renderTags();
      return true;
    } catch (error) {
      showError(tagError, error);
      return false;
    }
  }

  function actions(row, key, value) {
    const cell = el("td", {class: "actions"});
    if (current.read_only_tags.includes(key)) {
      cell.append(el("span", {class: "muted", title: "mlscope reads this tag back; it cannot be changed here"},
                     "set by mlscope"));
      return cell;
    }
    if (!editable) return cell;
    const edit = el("button", {type: "button", "data-tag-edit": key}, "Edit");
    const remove = el("button", {type: "button", "data-tag-remove": key}, "Remove");
    edit.addEventListener("click", () => editRow(row, key, value));
    remove.addEventListener("click", () => {
      const confirm = el("button", {type: "button", class: "danger", "data-tag-confirm": key}, "Remove tag");
      const keep = el("button", {type: "button"}, "Keep");
      confirm.addEventListener("click", () => change([confirm, keep], ["tags", "remove"], {key}));
      keep.addEventListener("click", renderTags);
      cell.replaceChildren(confirm, " ", keep);
      confirm.focus();
    });
    cell.append(edit, " ", remove);
    return cell;
  }

  function editRow(row, key, value) {
    const field = el("textarea", {rows: 1, "data-tag-input": key, "aria-label": `value of ${key}`});
    field.value = value;
    const save = el("button", {type: "button", "data-tag-save": key}, "Save");
    const cancel = el("button", {type: "button"}, "Cancel");
    save.addEventListener("click", () => change([save, cancel], ["tags"], {key, value: field.value}));
    cancel.addEventListener("click", renderTags);
    row.querySelector("td.value").replaceChildren(field);
    row.querySelector("td.actions").replaceChildren(save, " ", cancel);
    field.focus();
  }

  function renderTags() {
    const rows = Object.entries(current.tags).map(([key, value]) => {
      const row = el("tr", {"data-key": key});
      row.append(el("td", {class: "key"}, key), el("td", {class: "value"}, value));
      row.append(actions(row, key, value));
      return row;
    });
    const table = $("[data-tags]");
    table.tBodies[0].replaceChildren(...rows);
    table.hidden = rows.length === 0;
    $("[data-tags-empty]").hidden = rows.length > 0;
    const system = Object.entries(current.system_tags).map(([key, value]) => {
      const row = el("tr", {"data-key": key});
      row.append(el("td", {class: "key"}, key), el("td", {class: "value"}, value));
      return row;
    });
    $("[data-system-count]").textContent = String(system.length);
    $("[data-system-tags]").tBodies[0].replaceChildren(...system);
  }

  const form = $("[data-tag-form]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = form.querySelector("[data-new-tag-key]");
    const value = form.querySelector("[data-new-tag-value]");
    if (await change(form.querySelectorAll("button"), ["tags"], {key: key.value.trim(), value: value.value})) {
      key.value = "";
      value.value = "";
    }
  });

  return {
    // `data`: the run's note, tags, system tags and read-only tags (the run detail or a change's answer).
    render(data, canEdit) {
      current = data;
      editable = canEdit;
      form.hidden = !editable;
      if (!editable) editor.hidden = true;
      renderNote();
      renderTags();
    },
  };
}
