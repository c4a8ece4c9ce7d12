// SQL fields as a code editor: CodeJar (an editable element) with Prism's SQL highlighting,
// both from the npm registry. The form still posts the <textarea>, kept in step with the
// editor; without scripts the textarea is the editor.
import { CodeJar } from "/ui/assets/codejar.js";

const highlight = (element) => {
  element.innerHTML = window.Prism.highlight(element.textContent, window.Prism.languages.sql, "sql");
};

const enhance = (root) => {
  root.querySelectorAll("textarea.code[data-language=sql]").forEach((area) => {
    if (area.dataset.editor === "on" || !window.Prism) {
      return;
    }
    area.dataset.editor = "on";
    const editor = document.createElement("div");
    editor.className = "sql-editor language-sql";
    editor.setAttribute("role", "textbox");
    editor.setAttribute("aria-multiline", "true");
    if (area.id) {
      const label = document.querySelector(`label[for="${CSS.escape(area.id)}"]`);
      if (label) {
        label.id = label.id || `${area.id}-label`;
        editor.setAttribute("aria-labelledby", label.id);
        label.addEventListener("click", () => editor.focus());
      }
    }
    if (area.getAttribute("aria-invalid")) {
      editor.setAttribute("aria-invalid", area.getAttribute("aria-invalid"));
    }
    area.after(editor);
    area.hidden = true;
    area.required = false; // a hidden field cannot say it is empty: the server does
    const jar = CodeJar(editor, highlight, { tab: "  ", addClosing: false });
    jar.updateCode(area.value);
    const sync = () => {
      if (area.value !== editor.textContent) {
        area.value = editor.textContent;
        area.dispatchEvent(new Event("input", { bubbles: true }));
      }
    };
    jar.onUpdate(sync);
    editor.addEventListener("input", sync);
  });
};

enhance(document);
document.body.addEventListener("htmx:afterSwap", (event) => enhance(event.target));
