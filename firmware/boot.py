# Runs before main.py. Kept minimal: a failure here would leave the REPL open.
# No REPL lockdown here: MicroPython re-enables Ctrl-C at the start of every
# script, so main.py disables it as its first statement; a Ctrl-C during
# boot.py only ends boot.py, main.py still runs (docs/security.md SEC4).
