from reconciler.cli import main

main(prog_name="imgix-reconciler")
