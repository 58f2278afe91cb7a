// The official MCP TypeScript SDK's Streamable HTTP client against
// memory-mcp: initialize, list tools, run code, end the session (DELETE).
// Usage: node sdk-client.mjs URL TOKEN CODE. Prints one JSON line.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, token, code] = process.argv.slice(2);
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
const client = new Client({ name: "memory-mcp-e2e", version: "1.0.0" });
await client.connect(transport);
const sessionId = transport.sessionId;
const { tools } = await client.listTools();
const result = await client.callTool({ name: "execute_agent_code", arguments: { code } });
await transport.terminateSession();
await client.close();
console.log(JSON.stringify({
  sessionId,
  protocolVersion: transport.protocolVersion ?? null,
  tools: tools.map((t) => t.name),
  isError: result.isError ?? false,
  structured: result.structuredContent ?? null,
}));
