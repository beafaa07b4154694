"""`tspulab shell SCENARIO`: stand inside a running lab.

The scenario's lab comes up in its sandbox and the user gets a shell there (`commands.LabShell`):
Mininet CLI style `<host> <command>` lines (`sub1 curl https://twitter.com/`, `sub1 tcpdump -c 5
-n`) and tspulab's own commands (probe, verdicts, flows, registry, profile, capture, report).
`session` owns the terminal (foreground process group, SIGHUP, readline history) and the lab's
lifetime; `views` turns controller events and switch dumps into text.
"""
