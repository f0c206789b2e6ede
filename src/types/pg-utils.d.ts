// pg's own conversion of a query value to what goes on the wire (package export "./lib/*"),
// untyped by @types/pg: the held writes of open.ts are converted when held, not when sent.
declare module 'pg/lib/utils.js' {
  const utils: { prepareValue(value: unknown): unknown };
  export default utils;
}
