# Foreman. Quick start: `make run` (the demo) and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt | cksum | cut -d' ' -f1)

.PHONY: run test test-fast bench soak clean venv lerobot

venv: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $(STAMP)

run: venv
	$(PY) manage.py demo --robots 4 --port 8000

test: venv
	bash scripts/test.sh

# Unit and integration tests only (no browser), for quick iterations.
test-fast: venv
	FOREMAN_SKIP_BROWSER=1 bash scripts/test.sh

bench: venv
	$(PY) -m bench all

soak: venv
	$(PY) -m bench soak

# LeRobot's own environment, for --robot lerobot:TYPE (isolated: its torch pin; docs/robots.md).
# Built once under ~/.cache/foreman; `make test` builds it too when it first needs it.
lerobot:
	bash scripts/lerobot_env.sh

clean:
	rm -rf var .pytest_cache bench/results/*.json
