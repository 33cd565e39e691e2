"""The ``braze-import`` command: click and tqdm live here and nowhere else.

``main`` holds run, resume and retry; ``tools`` the commands around them (init-mapping, sandbox,
state); ``progress`` draws a run; ``metrics`` writes the Prometheus file.
"""
