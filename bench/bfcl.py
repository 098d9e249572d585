"""BFCL v4 (the `bfcl-eval` package: its questions, answers and AST checker) through the
gateway: accuracy and the share of invalid tool calls that reached the client, per
category and per way of serving the local model.

    pip install bfcl-eval==2026.3.23 --no-deps     # its data and checker, nothing else
    python bench/bfcl.py [--limit 40] [--categories live_simple,irrelevance]
                         [--modes off,on,constrained,cascade] [--out answers.jsonl]
    python bench/bfcl.py --summarize answers.jsonl [more.jsonl ...]   # the table again

Modes (each a model in one gateway config, all through /v1/chat/completions with
``tool_choice: auto``, temperature 0, the official openai SDK as the client):

- ``off``          Qwen2.5-Coder-0.5B, output checks off: what the model writes, parsed
- ``on``           the same with the output checks (repair, validate, re-ask once)
- ``constrained``  checks on and ``auto_tool_grammar``: text, or calls valid by grammar
- ``cascade``      a route group, weak = constrained 0.5B, strong = Qwen2.5-Coder-1.5B
                   (both local), ``cascade: true``: escalated when invalid or unsure
                   (the least confident 30%, ``cascade_share`` 0.3, the default)

Also there, not run by default: ``strong`` (the 1.5B alone, constrained) and
``cascade-half`` (``cascade_share: 0.5``).

A call is *invalid* when its arguments are not a JSON object that validates against the
declared tool's parameters (BFCL's correctness is stricter: the right values too).
``constants.model_config`` of bfcl-eval imports every provider SDK; it is stubbed here.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

import jsonschema

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from overhead import free_port, start_gateway, stop_all, wait_http  # noqa: E402

_stub = types.ModuleType("bfcl_eval.constants.model_config")
_stub.MODEL_CONFIG_MAPPING = collections.defaultdict(  # type: ignore[attr-defined]
    lambda: types.SimpleNamespace(underscore_to_dot=True))
sys.modules["bfcl_eval.constants.model_config"] = _stub

import bfcl_eval  # noqa: E402
from bfcl_eval.constants.enums import Language  # noqa: E402
from bfcl_eval.constants.type_mappings import GORILLA_TO_OPENAPI  # noqa: E402
from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker  # noqa: E402

DATA = Path(bfcl_eval.__file__).parent / "data"
CATEGORIES = ["simple_python", "multiple", "parallel", "irrelevance", "live_simple"]
MODES = ["off", "on", "constrained", "cascade"]
WEAK, STRONG = "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"


def config(ledger: Path) -> str:
    from hybridgate.models.store import models_dir  # pulled models, by path: the gateway
    weak, strong = (models_dir() / f"{m}.gguf" for m in (WEAK, STRONG))  # has its own home
    local = "    provider: local\n    n_ctx: 4096\n    n_threads: 2\n    num_retries: 0\n"
    return (f"ledger: {{url: 'sqlite:///{ledger}'}}\n"
            "models:\n"
            f"  - name: 'off'\n    model: '{weak}'\n{local}    output_checks: false\n"
            f"  - name: 'on'\n    model: '{weak}'\n{local}"
            f"  - name: constrained\n    model: '{weak}'\n{local}    auto_tool_grammar: true\n"
            f"  - name: strong\n    model: '{strong}'\n{local}    auto_tool_grammar: true\n"
            "routes:\n"
            "  - {name: cascade, weak: constrained, strong: strong, cascade: true}\n"
            "  - {name: cascade-half, weak: constrained, strong: strong, cascade: true,\n"
            "     cascade_share: 0.5}\n")


def load(category: str, limit: int | None) -> list[tuple[dict, Any]]:
    def lines(path: Path) -> list[dict]:
        return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    questions = lines(DATA / f"BFCL_v4_{category}.json")
    answers_path = DATA / "possible_answer" / f"BFCL_v4_{category}.json"
    answers = {a["id"]: a["ground_truth"] for a in lines(answers_path)} \
        if answers_path.exists() else {}
    out = [(q, answers.get(q["id"])) for q in questions]
    return out[:limit] if limit else out


def _openapi(schema: Any) -> Any:
    """BFCL's Python-flavoured types ("dict", "float", "tuple") as JSON Schema."""
    if isinstance(schema, list):
        return [_openapi(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _openapi(v) for k, v in schema.items()}
    if isinstance(out.get("type"), str):
        out["type"] = GORILLA_TO_OPENAPI.get(out["type"], out["type"])
    if "properties" in schema and isinstance(schema["properties"], dict):
        out["properties"] = {k: _openapi(v) for k, v in schema["properties"].items()}
    out.pop("optional", None)
    return out


def tools_of(functions: list[dict]) -> list[dict]:
    """OpenAI tools; '.' in a name becomes '_' (OpenAI's name pattern), as BFCL does."""
    return [{"type": "function", "function": {
        "name": f["name"].replace(".", "_"), "description": f.get("description", ""),
        "parameters": {**_openapi(f["parameters"]), "type": "object"}}} for f in functions]


def invalid(calls: list[Any], tools: list[dict]) -> int:
    by_name = {t["function"]["name"]: t["function"]["parameters"] for t in tools}
    bad = 0
    for c in calls:
        try:
            args = json.loads(c.function.arguments)
            if c.function.name not in by_name or not isinstance(args, dict):
                raise ValueError
            jsonschema.validate(args, by_name[c.function.name])
        except (ValueError, jsonschema.ValidationError, jsonschema.SchemaError):
            bad += 1
    return bad


def ask(client: Any, model: str, q: dict, tools: list[dict]) -> tuple[list[Any], str, dict]:
    resp = client.chat.completions.with_raw_response.create(
        model=model, messages=q["question"][0], tools=tools, tool_choice="auto",
        temperature=0, max_tokens=400)
    body = resp.parse()
    calls = body.choices[0].message.tool_calls or []
    return calls, resp.headers.get("x-hybridgate-route", ""), dict(resp.headers)


def grade(category: str, q: dict, answer: Any, calls: list[Any]) -> bool:
    if "irrelevance" in category:
        return not calls
    try:
        output = [{c.function.name: json.loads(c.function.arguments)} for c in calls]
    except ValueError:
        return False
    result = ast_checker(q["function"], output, answer, Language.PYTHON, category,
                         "hybridgate")
    return bool(result["valid"])


def summarize(paths: list[str]) -> None:
    """The table again, from the JSON lines of one or more runs (``--out``): rows are
    (category, mode) pairs in the order first seen; invalid calls recounted."""
    rows: dict[tuple[str, str], list[dict]] = {}
    questions: dict[str, dict] = {}
    for path in paths:
        for line in Path(path).read_text().splitlines():
            r = json.loads(line)
            rows.setdefault((r["category"], r["mode"]), []).append(r)
    print(HEADER)
    for (category, mode), items in rows.items():
        if category not in questions:
            questions[category] = {q["id"]: q for q, _ in load(category, None)}
        for r in items:  # recounted: older runs' lines have no "invalid"
            tools = tools_of(questions[category][r["id"]]["function"])
            r["invalid"] = invalid([types.SimpleNamespace(function=types.SimpleNamespace(
                name=name, arguments=args)) for name, args in r["calls"]], tools)
        print(row(category, mode, items))


HEADER = ("| category | mode | n | accuracy | invalid calls | escalated | s/question |\n"
          "|---|---|---|---|---|---|---|")


def row(category: str, mode: str, items: list[dict]) -> str:
    """One table row from the answers' records (as --out writes them)."""
    n = len(items)
    esc = sum("escalated=" in r["route"] for r in items)
    secs = [r["s"] for r in items if "s" in r]
    errors = sum(r["route"].startswith("error:") for r in items)
    return (f"| {category} | {mode} | {n} | {sum(r['ok'] for r in items) / n:.3f} | "
            f"{sum(r['invalid'] for r in items)} | "
            f"{f'{esc / n:.0%}' if mode.startswith('cascade') else '-'} | "
            f"{f'{sum(secs) / len(secs):.1f}' if secs else '-'} |"
            + (f" ({errors} errors)" if errors else ""))


def main() -> None:
    if sys.argv[1:2] == ["--summarize"]:
        summarize(sys.argv[2:])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=40, help="questions per category (0: all)")
    ap.add_argument("--categories", default=",".join(CATEGORIES))
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--out", type=Path, default=None, help="write every answer as JSON lines")
    args = ap.parse_args()
    from openai import OpenAI

    tmp = Path(tempfile.mkdtemp())
    cfg = tmp / "bfcl.yaml"
    cfg.write_text(config(tmp / "ledger.db"))
    port = free_port()
    procs = [start_gateway(cfg, port)]
    out = args.out.open("w") if args.out else None
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", timeout=600)
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none",
                        timeout=600, max_retries=0)
        print(HEADER)
        for category in args.categories.split(","):
            items = load(category, args.limit or None)
            for mode in args.modes.split(","):
                records = []
                for q, answer in items:
                    tools = tools_of(q["function"])
                    t1 = time.perf_counter()
                    try:
                        calls, route, headers = ask(client, mode, q, tools)
                        conf = headers.get("x-hybridgate-confidence")
                    except Exception as e:  # noqa: BLE001 - an error answer counts wrong
                        calls, route, conf = [], f"error: {type(e).__name__}: {e}", None
                    records.append({
                        "category": category, "mode": mode, "id": q["id"],
                        "ok": grade(category, q, answer, calls), "route": route,
                        "confidence": conf, "invalid": invalid(calls, tools),
                        "s": round(time.perf_counter() - t1, 2),
                        "calls": [[c.function.name, c.function.arguments] for c in calls]})
                    if out:
                        out.write(json.dumps(records[-1]) + "\n")
                print(row(category, mode, records), flush=True)
    finally:
        if out:
            out.close()
        stop_all(procs)


if __name__ == "__main__":
    main()
