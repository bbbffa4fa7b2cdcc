// A running service's check that its capture triggers still fire: a DBA's ALTER TABLE … DISABLE
// TRIGGER (or a partition whose trigger fires otherwise) loses order changes silently, so while it
// lasts the service says so at every check, not once.
import type pg from 'pg';
import { describeDbError } from '../db.ts';
import type { Logger } from '../log.ts';
import { type CaptureStatus, captureTriggerStatus } from './state.ts';
import type { CaptureTarget } from './render.ts';

export interface TriggerWatch {
  /** One check now; resolves with what it found (undefined when the catalog could not be read). */
  check(): Promise<CaptureStatus | undefined>;
  stop(): void;
}

/** Checks the triggers now and every `intervalMs`, logging each problem at each check while it lasts. */
export function watchCaptureTriggers(db: pg.Pool, target: CaptureTarget, log: Logger, intervalMs: number): TriggerWatch {
  let hadProblems = false;
  let running: Promise<CaptureStatus | undefined> | undefined;
  const check = (): Promise<CaptureStatus | undefined> => {
    running ??= (async () => {
      try {
        const status = await captureTriggerStatus(db, target);
        for (const problem of status.problems) log[problem.level]({ table: status.table, mode: status.mode }, problem.message);
        if (hadProblems && status.problems.length === 0)
          log.info({ table: status.table, mode: status.mode }, 'capture triggers fire again as configured');
        hadProblems = status.problems.length > 0;
        return status;
      } catch (error) {
        log.warn({ error: describeDbError(error) }, 'could not check the capture triggers');
        return undefined;
      } finally {
        running = undefined;
      }
    })();
    return running;
  };
  const timer = setInterval(() => void check(), intervalMs);
  void check();
  return { check, stop: () => clearInterval(timer) };
}
