// sdk_client.mjs -- drive colibri-mcp with the official MCP SDK client.
//
// Usage: node sdk_client.mjs SCENARIO COLIBRI_MCP [ARGS...]
// Environment: COLIBRI_TEST_AGENT (the binary spawn_local starts).
//
// Scenarios:
//   tools  initialise, list the tools, call every Colibri tool against the
//          real daemon and check each structuredContent against the tool's
//          outputSchema with ajv (the SDK checks it too: callTool throws on
//          a mismatch) and against the text block.
//   host   with an external host config: the proxied tools of the reference
//          "everything" server appear prefixed, echo round-trips, progress
//          notifications reach the caller's handler.
//
// Prints one JSON object on stdout ({"ok": true, ...} or {"ok": false,
// "error"}) and exits 0 only when every check passed.  Skills tools whose
// daemon command does not exist yet are reported under "unknown_command"
// rather than failed; the Python side decides what that means.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import Ajv from "ajv";

const [scenario, binary, ...binArgs] = process.argv.slice(2);
const ajv = new Ajv({ strict: false });
const report = { ok: false, checked: [], unknown_command: [] };

function check(cond, what) {
  if (!cond) throw new Error("check failed: " + what);
}

function textOf(result) {
  const block = (result.content || []).find((c) => c.type === "text");
  return block ? block.text : "";
}

async function connect() {
  const transport = new StdioClientTransport({
    command: binary,
    args: binArgs,
    env: { ...process.env },
    stderr: "inherit",
  });
  const client = new Client({ name: "colibri-sdk-test", version: "1.0.0" });
  await client.connect(transport);
  return client;
}

async function listTools(client) {
  const { tools } = await client.listTools();
  const byName = new Map(tools.map((t) => [t.name, t]));
  report.tool_names = tools.map((t) => t.name);
  report.tools_list_bytes = Buffer.byteLength(JSON.stringify({ tools }));
  return byName;
}

// Call a tool; a successful result is validated against its outputSchema.
async function call(client, tools, name, args, { expectError = false } = {}) {
  const tool = tools.get(name);
  check(tool, "tool " + name + " is listed");
  const result = await client.callTool({ name, arguments: args });
  if (result.isError) {
    if (/unknown_command/.test(textOf(result)) && !expectError) {
      report.unknown_command.push(name);
      return null;
    }
    check(expectError, name + " failed: " + textOf(result));
    check(textOf(result).length > 0, name + " error has a readable message");
    report.checked.push(name + " (error)");
    return result;
  }
  check(!expectError, name + " was expected to fail");
  const sc = result.structuredContent;
  check(sc && typeof sc === "object" && !Array.isArray(sc), name + " returns an object");
  const validate = ajv.compile(tool.outputSchema);
  check(validate(sc), name + " matches its outputSchema: " + ajv.errorsText(validate.errors));
  check(
    JSON.stringify(JSON.parse(textOf(result))) === JSON.stringify(sc),
    name + " text block holds the same JSON",
  );
  report.checked.push(name);
  return sc;
}

const OWN = [
  "task_create", "task_list", "task_show", "task_ready", "task_claim", "task_update",
  "task_complete", "task_release", "agents_list", "agent_status", "spawn_local",
  "skills_list", "skill_show",
];

async function scenarioTools(client) {
  const info = client.getServerVersion();
  check(info && info.name === "colibri-mcp", "serverInfo.name is colibri-mcp");
  check(client.getServerCapabilities().tools, "capabilities.tools");
  const tools = await listTools(client);
  for (const n of OWN) {
    const t = tools.get(n);
    check(t, n + " listed");
    check(t.inputSchema && t.inputSchema.type === "object", n + " inputSchema");
    check(t.outputSchema && t.outputSchema.type === "object", n + " outputSchema");
    ajv.compile(t.inputSchema);
  }

  const a = await call(client, tools, "task_create", { title: "first", priority: 5 });
  const b = await call(client, tools, "task_create", { title: "second", depends_on: [a.id] });
  check(a.status === "open" && b.depends_on[0] === a.id, "tasks created");
  const list = await call(client, tools, "task_list", {});
  check(list.items.length === 2, "task_list sees both tasks");
  const shown = await call(client, tools, "task_show", { id: b.id });
  check(shown.title === "second", "task_show");
  let ready = await call(client, tools, "task_ready", {});
  check(ready.items.length === 1 && ready.items[0].id === a.id, "only the first is ready");
  const claimed = await call(client, tools, "task_claim", { agent: "sdk" });
  check(claimed.id === a.id && claimed.owner === "sdk", "task_claim takes the head");
  const upd = await call(client, tools, "task_update", { id: a.id, progress: "half" });
  check(upd.progress === "half", "task_update");
  const done = await call(client, tools, "task_complete", { id: a.id, agent: "sdk", result: { n: 1 } });
  check(done.status === "done", "task_complete");
  ready = await call(client, tools, "task_ready", {});
  check(ready.items.length === 1 && ready.items[0].id === b.id, "the second is ready now");
  await call(client, tools, "task_claim", { agent: "sdk", id: b.id });
  const rel = await call(client, tools, "task_release", { id: b.id, agent: "sdk" });
  check(rel.status === "open" && rel.owner === null, "task_release");
  await call(client, tools, "task_show", { id: 999999 }, { expectError: true });

  const spawned = await call(client, tools, "spawn_local", {
    binary: process.env.COLIBRI_TEST_AGENT,
    args: ["--scenario", "text"],
    prompt: "hello",
  });
  if (spawned) {
    const st = await call(client, tools, "agent_status", { id: spawned.id });
    check(st.id === spawned.id, "agent_status of the spawned agent");
    report.spawned = spawned.id;
  }
  const agents = await call(client, tools, "agents_list", {});
  if (spawned) check(agents.items.some((x) => x.id === spawned.id), "agents_list shows it");
  await call(client, tools, "agent_status", { id: "no-such-agent" }, { expectError: true });

  const skills = await call(client, tools, "skills_list", {});
  if (skills && skills.items.length > 0) {
    const sk = await call(client, tools, "skill_show", { name: skills.items[0].name });
    check(sk.name === skills.items[0].name, "skill_show");
  } else if (skills) {
    await call(client, tools, "skill_show", { name: "no-such-skill" }, { expectError: true });
  } else {
    await call(client, tools, "skill_show", { name: "no-such-skill" });
  }
}

async function scenarioHost(client) {
  const tools = await listTools(client);
  check(tools.has("everything__echo"), "everything__echo offered");
  check(!tools.has("everything__get-env"), "everything__get-env not offered");
  check(!tools.has("echo"), "unprefixed echo not offered");
  const r = await client.callTool({ name: "everything__echo", arguments: { message: "héllo ✓" } });
  check(!r.isError && textOf(r) === "Echo: héllo ✓", "echo round-trips: " + textOf(r));
  report.checked.push("everything__echo");
  const progress = [];
  const lr = await client.callTool(
    { name: "everything__trigger-long-running-operation", arguments: { duration: 1, steps: 3 } },
    undefined,
    { onprogress: (p) => progress.push(p.progress), timeout: 20000 },
  );
  check(!lr.isError, "long-running operation: " + textOf(lr));
  // colibri-mcp forwards all three before the result (test_mcp_host.py checks the raw order),
  // but the SDK runs notification handlers a microtask later than response handlers, so the
  // last one may arrive after the call has settled and be dropped by the client.
  const want = [1, 2, 3].slice(0, Math.max(progress.length, 2));
  check(JSON.stringify(progress) === JSON.stringify(want), "progress notifications 1, 2 (3): " + progress);
  report.progress = progress;
  report.checked.push("everything__trigger-long-running-operation");
}

let client;
try {
  client = await connect();
  if (scenario === "tools") await scenarioTools(client);
  else if (scenario === "host") await scenarioHost(client);
  else throw new Error("unknown scenario " + scenario);
  report.ok = true;
} catch (e) {
  report.error = String(e && e.stack ? e.stack : e);
}
try {
  if (client) await client.close();
} catch (e) {
  report.close_error = String(e);
}
process.stdout.write(JSON.stringify(report) + "\n");
process.exit(report.ok ? 0 : 1);
