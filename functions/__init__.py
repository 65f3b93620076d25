"""One HTTP handler per file: file stem == functions-framework ``--target`` == route.

Run alone: ``functions-framework --source functions/<name>.py --target <name>``.
functions-framework puts only this folder on sys.path, so each handler adds the repo root.
"""
