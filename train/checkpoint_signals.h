#pragma once
// Preemption: SIGTERM or SIGUSR1 (Slurm's `--signal=USR1@T`, or the SIGTERM before a kill) only
// set a flag here. The trainer looks at it at every step boundary, where all ranks agree through
// one small all-reduce (a rank that got the signal stops the others), save a checkpoint and exit
// with kExitResumable (75). Nothing is written from the handler itself.

namespace tessera::train {

// Installs the handlers for SIGTERM and SIGUSR1 (the `tessera train` command does this).
void install_stop_handlers();
// True once a handled signal arrived (or request_stop() was called).
bool stop_requested();
// The same as receiving a signal (tests, tools); clear_stop() resets the flag.
void request_stop();
void clear_stop();

}  // namespace tessera::train
