"""The baseline for bench/status_rps.py: Flask's hello world, served by waitress like the service.

    python -m waitress --listen=127.0.0.1:8081 --threads=8 bench.hello:app
"""
import flask

app = flask.Flask(__name__)


@app.get("/")
def hello() -> str:
    return "Hello, World!"
