/**
 * Preloaded with `--import` (through NODE_OPTIONS, where Node 20 refuses `--cpu-prof`) into the processes
 * bench/tunnel starts as a user would (the agent, `fleetgate tunnel`): profiles the main thread from start to
 * exit and writes a V8 CPU profile, `<pid>.cpuprofile`, into FLEETGATE_CPU_PROF_DIR.
 */
import fs from 'node:fs';
import { Session } from 'node:inspector';
import path from 'node:path';

const dir = process.env.FLEETGATE_CPU_PROF_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.start');
  // The in-thread session answers synchronously, so the profile can be written from an 'exit' listener.
  process.once('exit', () => {
    session.post('Profiler.stop', (error, result) => {
      if (!error)
        fs.writeFileSync(path.join(dir, `${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
