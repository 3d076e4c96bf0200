# One entry point for a newcomer: `make serve` and `make test` set everything up themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATASETS ?= ../shared/datasets
PREPARED ?= prepared/bts
BUNDLE ?= bundles/bts
SCENE_PHOTOS ?= prepared/scene-bts
SCENE_BUNDLE ?= bundles/scene-bts
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup serve bundle scene-bundle evaluate scene-evaluate test lint

setup: $(VENV)/.installed

# torch and torchvision are pinned in pyproject.toml to the builds on this machine's disk;
# constraints.txt pins everything else, so one install resolves the same way every time.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $@

$(PREPARED)/faces.csv: | setup
	$(BIN)/memberlens prepare --photos $(DATASETS)/bts-group-photos \
		--strangers $(DATASETS)/strangers --out $(PREPARED)

$(BUNDLE)/manifest.json: $(PREPARED)/faces.csv
	$(BIN)/memberlens train --prepared $(PREPARED) --roster rosters/bts.yaml --out $(BUNDLE) \
		--overwrite

bundle: $(BUNDLE)/manifest.json

# The scene model is trained on crops, collages, degraded copies and strangers made from the
# prepared photos, and written with a copy of the face bundle into its own bundle.
$(SCENE_PHOTOS)/scene.csv: $(PREPARED)/faces.csv
	$(BIN)/memberlens scene-photos --prepared $(PREPARED) --out $(SCENE_PHOTOS)

$(SCENE_BUNDLE)/manifest.json: $(BUNDLE)/manifest.json $(SCENE_PHOTOS)/scene.csv
	$(BIN)/memberlens scene-train --scene-photos $(SCENE_PHOTOS) --face-bundle $(BUNDLE) \
		--out $(SCENE_BUNDLE) --overwrite

scene-bundle: $(SCENE_BUNDLE)/manifest.json

serve: setup bundle
	$(BIN)/memberlens serve --bundle $(BUNDLE) --host $(HOST) --port $(PORT)

evaluate: setup bundle
	$(BIN)/memberlens evaluate --bundle $(BUNDLE) --prepared $(PREPARED) \
		--report reports/evaluate.json

scene-evaluate: setup scene-bundle
	$(BIN)/memberlens evaluate --bundle $(SCENE_BUNDLE) --prepared $(PREPARED) \
		--scene-photos $(SCENE_PHOTOS) --report reports/evaluate-scene.json \
		--plots reports/scene-plots

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check data_tools model service tests
	$(BIN)/mypy
