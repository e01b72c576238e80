"""The run: the pytest plugin that turns cases into checks, its workers, isolation of crashes and
hangs, the preflight, the plan of a profile and the finish of a run."""
