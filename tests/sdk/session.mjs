// One full session of the official MCP TypeScript SDK client
// (@modelcontextprotocol/sdk, pinned in tests/http/package.json and
// installed by scripts/npm-http.sh) against memory-mcp over stdio
// (issue 18, "Tests"). Run by tests/e2e_clients.rs as:
//   node session.mjs <memory-mcp binary> <server args...>
// It prints one JSON line of findings on success and exits 1 with the
// reason otherwise.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const [bin, ...serverArgs] = process.argv.slice(2);
const fail = (why) => {
  console.error(`session: ${why}`);
  process.exit(1);
};
const check = (cond, why) => cond || fail(why);

const transport = new StdioClientTransport({ command: bin, args: serverArgs, stderr: "ignore" });
const client = new Client({ name: "memory-mcp-sdk-session", version: "1.0.0" });
let listChanged = 0;
client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
  listChanged += 1;
});
await client.connect(transport);
const findings = { server: client.getServerVersion(), protocol: transport.protocolVersion ?? null };

// Lists.
const tools = (await client.listTools()).tools;
const prompts = (await client.listPrompts()).prompts;
const resources = (await client.listResources()).resources;
const templates = (await client.listResourceTemplates()).resourceTemplates;
findings.tools = tools.length;
findings.prompts = prompts.map((p) => p.name);
check(prompts.some((p) => p.name === "start_task") && prompts.some((p) => p.name === "record_what_i_did"), "prompts missing");
check(resources.some((r) => r.uri === "tools://index.d.ts"), "tools:// resources missing");
for (const t of ["memory://episodes/{id}", "memory://patterns/{id}"]) {
  check(templates.some((x) => x.uriTemplate === t), `template ${t} missing`);
}

// Every output is validated against its tool's outputSchema with a strict
// Draft 2020-12 validator (the SDK also checks it on every callTool).
const ajv = new Ajv2020({ strict: true, allErrors: true });
addFormats(ajv);
const validators = new Map();
for (const t of tools) {
  check(t.outputSchema, `${t.name} has no outputSchema`);
  check(t.annotations && typeof t.annotations.readOnlyHint === "boolean", `${t.name} has no annotations`);
  validators.set(t.name, ajv.compile(t.outputSchema));
}
let validated = 0;
const call = async (name, args, { expectError = false, ...opts } = {}) => {
  const r = await client.callTool({ name, arguments: args }, undefined, opts);
  if (expectError) {
    check(r.isError === true, `${name} should be isError: ${JSON.stringify(r).slice(0, 300)}`);
  } else {
    check(r.isError !== true, `${name}(${JSON.stringify(args)}) failed: ${JSON.stringify(r.content).slice(0, 500)}`);
  }
  if (r.structuredContent !== undefined) {
    const validate = validators.get(name);
    if (validate) {
      check(validate(r.structuredContent), `${name} output does not match its outputSchema: ${ajv.errorsText(validate.errors)}`);
      validated += 1;
    }
  } else {
    check(expectError, `${name} returned no structuredContent`);
  }
  return r.structuredContent;
};

// Episodes.
const ep = await call("create_episode", {
  task_description: "fix the flaky login test",
  domain: "web-api",
  task_type: "debugging",
  context: { language: "typescript", tags: ["auth"] },
});
const id = ep.episode_id;
for (const n of [1, 2]) {
  await call("add_episode_step", {
    episode_id: id, step_number: n, tool: "npm", action: `run tests ${n}`,
    result: { type: "success", output: "ok" }, latency_ms: 10,
  });
}
await call("complete_episode", { episode_id: id, outcome: { outcome_type: "success", verdict: "fixed" } });
await call("get_episode", { episode_id: id });
await call("query_memory", { query: "login test" });
await call("quality_metrics", {});
// Patterns.
await call("analyze_patterns", { task_type: "debugging", min_success_rate: 0 });
await call("search_patterns", { query: "tests", domain: "web-api" });
await call("recommend_patterns", { task_description: "fix a flaky test", domain: "web-api" });
// Embeddings, discovery, health.
await call("test_embeddings", {});
await call("search_tools", { query: "episode" });
await call("describe_tools", { names: ["memory.get_episode"] });
await call("health_check", {});
await call("get_metrics", {});
// Code mode: JavaScript, TypeScript without the flag, a failing script.
const ran = await call("execute_agent_code", { code: "return context.input.n * 2", context: { input: { n: 21 } } });
check(ran.status === "success" && ran.output === 42, `execute_agent_code: ${JSON.stringify(ran)}`);
const ts = await call("execute_agent_code", { code: "const x: number = 41; return x + 1" });
check(ts.status === "success" && ts.output === 42, `TypeScript without the flag: ${JSON.stringify(ts)}`);
const failed = await call("execute_agent_code", { code: "throw new Error('boom')" }, { expectError: true });
check(failed.status === "error", `a failed script keeps its structured result: ${JSON.stringify(failed)}`);
await call("get_tool_audit", {});

// Resources and prompts.
const episode = await client.readResource({ uri: `memory://episodes/${id}` });
check(JSON.parse(episode.contents[0].text).task_description === "fix the flaky login test", "episode resource");
const page = await client.listResources();
check(page.resources.some((r) => r.uri === `memory://episodes/${id}`), "episode listed as a resource");
const start = await client.getPrompt({ name: "start_task", arguments: { description: "fix the flaky login test" } });
check(start.messages[0].content.text.includes(id), "start_task shows the related episode");
const record = await client.getPrompt({ name: "record_what_i_did", arguments: { summary: "ran the tests" } });
check(record.messages[0].content.text.includes("create_episode"), "record_what_i_did");

// A plugin: saved with progress reported, announced by list_changed, then called.
const before = listChanged;
const progress = [];
await call(
  "save_plugin",
  { execution_id: ran.execution_id, name: "doubler", description: "Doubles n.",
    input_schema: { type: "object", properties: { n: { type: "number" } }, required: ["n"] } },
  { onprogress: (p) => progress.push(p), timeout: 120000 },
);
check(progress.length > 0, "save_plugin sent no progress notifications");
check(progress.every((p, i) => i === 0 || p.progress > progress[i - 1].progress), "progress grows");
const deadline = Date.now() + 30000;
while (listChanged === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
check(listChanged > before, "no notifications/tools/list_changed after save_plugin");
const relisted = (await client.listTools()).tools;
const doubler = relisted.find((t) => t.name === "doubler");
check(doubler, "the plugin is listed after list_changed");
validators.set("doubler", ajv.compile(doubler.outputSchema));
const doubled = await call("doubler", { n: 4 });
check(doubled.output === 8, `plugin call: ${JSON.stringify(doubled)}`);
await call("doubler", { n: "nope" }, { expectError: true });
await call("list_plugins", {});
await call("remove_plugin", { name: "doubler" });
await call("delete_episode", { episode_id: id, confirm: true });

findings.validated = validated;
findings.progress = progress.length;
findings.list_changed = listChanged;
await client.close();
console.log(JSON.stringify(findings));
