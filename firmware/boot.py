# Runs before main.py. Kept minimal: a failure here would leave the REPL open.
