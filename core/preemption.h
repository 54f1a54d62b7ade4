#pragma once
// Run control on preemption: SIGTERM or SIGUSR1 (Slurm's `--signal=USR1@T`, or the SIGTERM before
// a kill) only set a process-wide flag here (taken by a sigwait thread, no handler). The trainer
// installs the handlers; the checkpointer looks at the flag at every step boundary, where all
// ranks agree through one small all-reduce (a rank that got the signal stops the others), saves a
// checkpoint, and the run exits with kExitResumable (75). Nothing is written from the handler
// itself. It lives in core/ because both train/ (which installs it) and checkpoint/ (which reads
// it at step boundaries) depend on it.

namespace tessera::preemption {

// Takes SIGTERM and SIGUSR1 from now on (the `tessera train` command does this first): blocks
// them in the calling thread, hence in every thread it creates later, and starts one thread that
// waits for them. Call before other threads exist. Idempotent.
void install_stop_handlers();
// True once a handled signal arrived (or request_stop() was called).
bool stop_requested();
// The same as receiving a signal (tests, tools); clear_stop() resets the flag.
void request_stop();
void clear_stop();

}  // namespace tessera::preemption
