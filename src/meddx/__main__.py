from meddx.cli.main import run

run()
