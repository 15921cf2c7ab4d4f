from reconciler.cli import run

run(prog_name="imgix-reconciler")
