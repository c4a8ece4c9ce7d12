// The journey canvas: ELK (elkjs, from the npm registry) lays the graph out; this draws it as
// SVG — a box per node with its counts, arrows labelled with their paths — and a click (or
// Enter) on a node opens its details below.
const showNode = (id) => {
  document.querySelectorAll(".node-details").forEach((details) => {
    details.hidden = details.dataset.node !== id;
  });
  const shown = document.querySelector(`.node-details[data-node="${CSS.escape(id)}"]`);
  if (shown) {
    shown.scrollIntoView({ block: "nearest" });
  }
};
document.querySelectorAll("[data-show-node]").forEach((button) => {
  button.addEventListener("click", () => showNode(button.dataset.showNode));
});

(function () {
  const holder = document.getElementById("canvas");
  if (!holder || typeof ELK === "undefined") {
    return;
  }
  const graph = JSON.parse(holder.dataset.graph);
  const svgNS = "http://www.w3.org/2000/svg";
  const size = (node) => (node.type === "start" || node.type === "end" ? [90, 36] : [190, 64]);
  const elk = new ELK();
  const layout = {
    id: "root",
    layoutOptions: {
      "elk.algorithm": "layered",
      "elk.direction": "RIGHT",
      "elk.spacing.nodeNode": "30",
      "elk.layered.spacing.nodeNodeBetweenLayers": "60",
      "elk.edgeLabels.inline": "true",
    },
    children: graph.nodes.map((node) => ({ id: node.id, width: size(node)[0], height: size(node)[1] })),
    edges: graph.edges.map((edge, index) => ({
      id: "e" + index,
      sources: [edge.source],
      targets: [edge.target],
      labels: edge.label ? [{ text: edge.label, width: 9 * edge.label.length + 40, height: 16 }] : [],
    })),
  };
  const make = (tag, attributes, parent) => {
    const element = document.createElementNS(svgNS, tag);
    Object.entries(attributes).forEach(([key, value]) => element.setAttribute(key, value));
    if (parent) {
      parent.appendChild(element);
    }
    return element;
  };
  elk.layout(layout).then((placed) => {
    const svg = make("svg", {
      viewBox: `0 0 ${placed.width + 20} ${placed.height + 20}`,
      role: "group",
      "aria-label": "The journey's nodes, in the order customers move through them",
      class: "canvas",
    });
    const defs = make("defs", {}, svg);
    const marker = make("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto" }, defs);
    make("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }, marker);
    const shift = make("g", { transform: "translate(10 10)" }, svg);
    placed.edges.forEach((edge, index) => {
      const drawn = graph.edges[index];
      edge.sections.forEach((section) => {
        const points = [section.startPoint, ...(section.bendPoints || []), section.endPoint];
        make("polyline", {
          points: points.map((p) => `${p.x},${p.y}`).join(" "),
          class: "edge" + (drawn.control ? " control" : ""),
          "marker-end": "url(#arrow)",
        }, shift);
      });
      (edge.labels || []).forEach((label) => {
        const text = make("text", { x: label.x, y: label.y + 12, class: "edge-label" }, shift);
        text.textContent = drawn.label + (drawn.taken != null ? ` · ${drawn.taken.toLocaleString()}` : "");
      });
    });
    placed.children.forEach((child) => {
      const node = graph.nodes.find((n) => n.id === child.id);
      const group = make("g", {
        transform: `translate(${child.x} ${child.y})`,
        class: `node node-${node.type}`,
        "data-node": node.id,
      }, shift);
      make("rect", { width: child.width, height: child.height, rx: "8" }, group);
      const title = make("text", { x: 10, y: 22, class: "node-name" }, group);
      title.textContent = node.label;
      if (node.now !== undefined) {
        const counts = make("text", { x: 10, y: 46, class: "node-counts" }, group);
        counts.textContent = `${node.type} · ${node.now.toLocaleString()} now · ${node.entered.toLocaleString()} in all`;
        group.setAttribute("tabindex", "0");
        group.setAttribute("role", "button");
        group.setAttribute("aria-label", `${node.label}: ${node.now} now, ${node.entered} in all; show details`);
        const open = () => showNode(node.id);
        group.addEventListener("click", open);
        group.addEventListener("keydown", (event) => {
          if (event.key === "Enter" || event.key === " ") {
            event.preventDefault();
            open();
          }
        });
      }
    });
    holder.replaceChildren(svg);
    holder.dataset.drawn = "true";
  });
})();
