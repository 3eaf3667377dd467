"""The tools: the command line behind make (progress, verify, reset, update, build, doctor,
room) and the workbooks it works on. They sit on top and may import any layer."""
