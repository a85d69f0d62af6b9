// The API reference: /openapi.json rendered as a list of operations, grouped by service. No
// dependency and nothing fetched from elsewhere.
"use strict";

const element = (tag, attributes = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
};

/** A JSON schema as a short example of its shape. */
function shapeOf(schema) {
  if (!schema) return null;
  if (schema.const !== undefined) return schema.const;
  if (schema.anyOf) return shapeOf(schema.anyOf.find((s) => s.type !== "null"));
  if (schema.type === "object") return Object.fromEntries(Object.entries(schema.properties ?? {}).map(([k, v]) => [k, shapeOf(v)]));
  if (schema.type === "array") return schema.prefixItems ? schema.prefixItems.map(shapeOf) : [shapeOf(schema.items)];
  if (schema.type === "integer" || schema.type === "number") return 0;
  if (schema.type === "boolean") return true;
  return schema.type ?? null;
}

function renderOperation(path, method, operation) {
  const parameters = operation.parameters ?? [];
  const answer = operation.responses?.["200"]?.content?.["application/json"]?.schema;
  const rows = parameters.map((p) =>
    element("tr", {}, element("td", {}, element("code", {}, p.name)), element("td", {}, p.description ?? p.schema?.type ?? ""), element("td", {}, p.schema?.pattern ? element("code", {}, p.schema.pattern) : "")),
  );
  const refusals = Object.entries(operation.responses ?? {})
    .filter(([status]) => status !== "200")
    .map(([status, response]) => element("tr", {}, element("td", {}, status), element("td", {}, response.description ?? "")));
  return element(
    "section",
    { class: "operation", id: operation.operationId ?? `${method}-${path}` },
    element("header", {}, element("span", { class: `method ${method}` }, method.toUpperCase()), element("span", { class: "path" }, path)),
    element("p", { class: "summary" }, operation.summary ?? ""),
    ...(rows.length ? [element("table", {}, element("tr", {}, element("th", {}, "parameter"), element("th", {}, ""), element("th", {}, "pattern")), ...rows)] : []),
    element("div", {}, "200: ", element("pre", {}, JSON.stringify(shapeOf(answer)))),
    element("table", {}, ...refusals),
  );
}

async function main() {
  const main = document.getElementById("operations");
  try {
    const response = await fetch("/openapi.json");
    const doc = await response.json();
    document.getElementById("description").textContent = doc.info?.description ?? "";
    document.getElementById("version").textContent = doc.openapi;
    const groups = new Map();
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        const tag = operation.tags?.[0] ?? "other";
        if (!groups.has(tag)) groups.set(tag, []);
        groups.get(tag).push(renderOperation(path, method, operation));
      }
    }
    main.replaceChildren(...[...groups].flatMap(([tag, sections]) => [element("h2", { id: tag }, `/${tag}`), ...sections]));
  } catch (error) {
    main.replaceChildren(element("p", { class: "error" }, `Could not load /openapi.json: ${error}`));
  }
}

main();
