// Word statistics of `context.input.text`: counts and the most frequent
// words. A pure plugin: its policy grants no tools, so the component
// imports no tool interface at all.
interface Input {
  text: string;
  top?: number;
}

const { text, top = 5 }: Input = context.input;
if (typeof text !== "string") throw new TypeError("`text` must be a string");

const words: string[] = text.toLowerCase().match(/[\p{L}\p{N}']+/gu) ?? [];
const counts = new Map<string, number>();
for (const w of words) counts.set(w, (counts.get(w) ?? 0) + 1);

const frequent = [...counts.entries()]
  .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
  .slice(0, Math.max(0, Math.min(top, 50)))
  .map(([word, count]) => ({ word, count }));

return {
  words: words.length,
  distinct: counts.size,
  sentences: text.split(/[.!?]+/).filter((s) => s.trim().length > 0).length,
  frequent,
};
