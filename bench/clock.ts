// One clock for every bench process: wall-clock milliseconds with sub-millisecond resolution, so that
// a commit time taken in the order app's process and an arrival time taken in the receiver's compare.
export function now(): number {
  return performance.timeOrigin + performance.now();
}
