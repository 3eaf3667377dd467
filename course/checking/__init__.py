"""The checking machinery: Exercise and its verdicts (checks), progress, the room, solution
markers, and the fixtures, probes, race gates and judges that several lessons' checks share.
It imports the databases layer and the modules directly in course/, nothing above."""
