// Past episodes like the task in `context.input.task`, and how they went:
// the success rate among finished ones and the best match that worked.
// Calls one tool, memory.query_memory, the only one its policy grants.
const { task, domain, limit = 5 } = context.input;
if (typeof task !== "string" || task.trim() === "") throw new TypeError("`task` must be a non-empty string");

const found = await tools.memory.query_memory({ query: task, domain, limit, sort: "relevance" });
const episodes = (found.results ?? []).map((r) => ({
  episode_id: r.episode_id,
  task: r.task_description,
  outcome: r.outcome ?? null,
  reward: r.reward ?? null,
}));
const finished = episodes.filter((e) => e.outcome !== null);
const worked = finished.filter((e) => e.outcome === "success");

return {
  matches: episodes.length,
  success_rate: finished.length ? worked.length / finished.length : null,
  best: worked[0] ?? null,
  episodes,
};
