# Runs before main.py on every boot. Kept empty on purpose: whatever goes wrong
# in the app, the board still reaches main.py and, after Ctrl-C, the REPL.
