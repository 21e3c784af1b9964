/** @jsxImportSource hono/jsx */
// A job's log lines (ctx.log), in order across attempts. Messages and fields
// come from handlers: JSX escapes them.
import type { JobLogLine } from "../../producer/types.ts";
import { Empty } from "./components.tsx";
import { count, iso } from "./format.ts";
import { type JobLogs, LOG_LINES_SHOWN } from "./job-data.ts";

export function LogsSection(props: { logs: JobLogs }) {
  const { lines, more, dropped } = props.logs;
  const kept = lines.filter((l) => l.level !== "dropped").length;
  return (
    <>
      <h2>
        {`Logs (${more ? `first ${count(kept)}` : count(kept)})`}
      </h2>
      <div class="panel" data-testid="logs">
        {lines.length === 0 ? (
          <Empty>No log lines. A handler writes them with ctx.log.</Empty>
        ) : (
          <table class="logs">
            <thead>
              <tr>
                <th class="num">Attempt</th>
                <th>Time (UTC)</th>
                <th>Level</th>
                <th>Message</th>
              </tr>
            </thead>
            <tbody>
              {lines.map((line, k) => (
                <LogRow line={line} previous={lines[k - 1]} />
              ))}
              {more ? (
                <tr class="log-note" data-testid="logs-more">
                  <td colspan={4}>{`Only the first ${count(LOG_LINES_SHOWN)} lines are shown here.`}</td>
                </tr>
              ) : null}
              {dropped ? <LogRow line={dropped} previous={undefined} /> : null}
            </tbody>
          </table>
        )}
      </div>
    </>
  );
}

function LogRow(props: { line: JobLogLine; previous: JobLogLine | undefined }) {
  const { line, previous } = props;
  if (line.level === "dropped") {
    return (
      <tr class="log-note" data-seq={line.seq} data-level="dropped">
        <td colspan={4}>{line.message}</td>
      </tr>
    );
  }
  const at = new Date(line.at);
  const stamp = at.toISOString();
  // The date only where it changes: lines of one attempt are usually seconds apart.
  const showDate = !previous || new Date(previous.at).toISOString().slice(0, 10) !== stamp.slice(0, 10);
  const newAttempt = previous !== undefined && previous.attempt !== line.attempt;
  return (
    <tr class={`log ${line.level}${newAttempt ? " new-attempt" : ""}`} data-seq={line.seq} data-level={line.level}>
      <td class="num">{line.attempt}</td>
      <td class="mono time" title={iso(at)}>
        {showDate ? `${stamp.slice(0, 10)} ${stamp.slice(11, 23)}` : stamp.slice(11, 23)}
      </td>
      <td>
        <span class={`level ${line.level}`}>{line.level}</span>
      </td>
      <td class="wrap msg">
        {line.message}
        {line.fields && Object.keys(line.fields).length > 0 ? <span class="fields mono">{JSON.stringify(line.fields)}</span> : null}
      </td>
    </tr>
  );
}
