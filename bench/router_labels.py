"""Make routing labels with the two local models on public question sets, graded automatically.

The RouteLLM labels (../shared/data/routellm) cover MMLU and MT-Bench for Mixtral-8x7B vs
GPT-4. To see what the router does on other kinds of request, and to train it on more
than one kind, this script asks Qwen2.5-Coder-0.5B-Instruct (weak) and -1.5B-Instruct
(strong) questions from BIG-bench tasks (Srivastava et al. 2022, Apache-2.0; the task
files ship in the `bigbench==1.0.0` sdist on PyPI, which is downloaded with
`pip download --no-deps` and read without installing it), greedy decoding, and grades
each answer against the task's own target. Multiple-choice tasks are asked as lettered
options (order shuffled with a fixed seed) and the answer is the letter the model ranks
first (greedy, with the letters' logits raised above every other token), so a model that
would start to reason is scored on the option it prefers rather than cut off
mid-sentence (the usual way to score multiple choice); numeric tasks are constrained by
a grammar to a number; the rest (word sorting) answer freely and
are graded by normalized string match.

Each task is one domain and one CSV in RouteLLM's format (prompt, weak correct, strong
correct), written to bench/data/local_labels/bb_<task>.csv. Answers are cached in
``--cache`` (JSONL) so an interrupted run resumes.

    python bench/router_labels.py [--per-task 100] [--tasks date_understanding,...]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "data" / "local_labels"
BIGBENCH = "bigbench==1.0.0"
WEAK, STRONG = "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"

# task -> (kind, max answer tokens). Chosen for variety: dates, counting, sorting, physics,
# code, multi-step yes/no, social, logic, a small table, arithmetic, puns, time order,
# implicature, causation. Dropped after a run:
# sports_understanding and navigate, where both models gave the same answer to all 100
# questions (always the first option), so no label says anything.
TASKS: dict[str, tuple[str, int]] = {
    "date_understanding": ("mc", 1),
    "object_counting": ("number", 8), "word_sorting": ("exact", 64),
    "physics": ("mc", 1), "code_line_description": ("mc", 1),
    "strategyqa": ("mc", 1), "social_iqa": ("mc", 1),
    "logical_fallacy_detection": ("mc", 1), "penguins_in_a_table": ("mc", 1),
    "arithmetic": ("number", 12),
    # added in a second run: humour, time, pragmatics, causes
    "ruin_names": ("mc", 1), "temporal_sequences": ("mc", 1),
    "implicatures": ("mc", 1), "causal_judgment": ("mc", 1),
}
NUMBER_GBNF = 'root ::= "-"? [0-9] [0-9]? [0-9]? [0-9]? [0-9]? [0-9]? [0-9]? [0-9]? [0-9]?'
ANSWERS_VERSION = "2"  # in the cache key: v2 constrains letters and numbers
ARITHMETIC = ["2_digit_multiplication", "3_digit_addition", "3_digit_subtraction",
              "3_digit_multiplication", "4_digit_addition", "2_digit_division"]


def bigbench_tarball(cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob("bigbench-1.0.0.tar.gz"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
                        ":all:", "-q", "-d", str(cache), BIGBENCH], check=True)
        found = sorted(cache.glob("bigbench-1.0.0.tar.gz"))
    return found[0]


def read_tasks(tarball: Path) -> dict[str, dict]:
    """task name (arithmetic subtasks as arithmetic/<sub>) -> task.json."""
    wanted = {f"benchmark_tasks/{t}/task.json" for t in TASKS if t != "arithmetic"}
    wanted |= {f"benchmark_tasks/arithmetic/{s}/task.json" for s in ARITHMETIC}
    out = {}
    with tarfile.open(tarball) as tar:
        for m in tar:
            rel = m.name.split("/bigbench/", 1)[-1]
            if rel in wanted:
                name = rel.removeprefix("benchmark_tasks/").removesuffix("/task.json")
                out[name] = json.load(tar.extractfile(m))
    return out


def questions(task: str, spec: dict, n: int, rng: random.Random) -> list[dict]:
    """Up to n questions: prompt text, kind, and what counts as right."""
    kind = TASKS[task.split("/")[0]][0]
    prefix = spec.get("task_prefix", "")
    examples = [e for e in spec["examples"] if len(e["input"]) < 1500
                and len(e.get("target_scores", ())) <= 10]
    rng.shuffle(examples)
    out = []
    for e in examples[:n]:
        text = (prefix.strip() + "\n\n" + e["input"].strip()).strip()
        if kind == "mc":
            options = list(e["target_scores"])
            rng.shuffle(options)
            best = max(options, key=lambda o: e["target_scores"][o])
            letters = "ABCDEFGHIJ"[:len(options)]
            body = "\n".join(f"{c}. {o}" for c, o in zip(letters, options, strict=True))
            prompt = f"{text}\n\n{body}\n\nAnswer with the letter of the correct option only."
            out.append({"prompt": prompt, "kind": "mc", "answer": letters[options.index(best)],
                        "options": dict(zip(letters, options, strict=True))})
        else:
            targets = e["target"] if isinstance(e["target"], list) else [e["target"]]
            out.append({"prompt": f"{text}\n\nGive only the final answer.", "kind": kind,
                        "answer": targets})
    return out


_NUM = re.compile(r"-?\d+(?:\.\d+)?")
_LETTER = re.compile(r"\b([A-J])\b")


def _norm(s: str) -> str:
    return " ".join(re.sub(r"[^\w\s-]", " ", s.lower()).split())


def correct(q: dict, reply: str) -> bool:
    if q["kind"] == "mc":
        m = _LETTER.search(reply.strip())
        if m:
            return m.group(1) == q["answer"]
        return _norm(reply) == _norm(q["options"][q["answer"]])
    got = _norm(reply.splitlines()[0] if reply.strip() else "")
    for t in q["answer"]:
        if got == _norm(t):
            return True
        if _NUM.fullmatch(t.strip()):
            nums = _NUM.findall(reply)
            if nums and float(nums[0]) == float(t):
                return True
    return False


def answer_all(model: str, qs: list[dict], max_tokens: dict[str, int], cache: Path) -> dict:
    """prompt hash -> reply, from the cache or the model (greedy)."""
    from llama_cpp import Llama, LlamaGrammar

    from hybridgate.models.store import resolve_gguf

    done: dict[str, str] = {}
    if cache.exists():
        for line in cache.read_text().splitlines():
            r = json.loads(line)
            if r["model"] == model:
                done[r["key"]] = r["reply"]
    todo = [q for q in qs if q["key"] not in done]
    if not todo:
        return done
    llm = Llama(str(resolve_gguf(model)), n_ctx=2048, n_threads=2, n_batch=512,
                verbose=False)
    t0 = time.time()
    number = LlamaGrammar.from_string(NUMBER_GBNF, verbose=False)
    letter = {c: llm.tokenize(c.encode(), add_bos=False)[0] for c in "ABCDEFGHIJ"}
    with cache.open("a") as f:
        for i, q in enumerate(todo, 1):
            extra: dict = {}
            if q["kind"] == "mc":  # one token, the best of the option letters
                extra["logit_bias"] = {letter[c]: 100.0 for c in q["options"]}
            elif q["kind"] == "number":
                extra["grammar"] = number
            out = llm.create_chat_completion(
                [{"role": "user", "content": q["prompt"]}], temperature=0.0,
                max_tokens=max_tokens[q["task"]], **extra)
            reply = out["choices"][0]["message"]["content"] or ""
            done[q["key"]] = reply
            f.write(json.dumps({"model": model, "key": q["key"], "reply": reply}) + "\n")
            f.flush()
            if i % 50 == 0:
                print(f"  {model}: {i}/{len(todo)} ({time.time() - t0:.0f} s)", flush=True)
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--per-task", type=int, default=100)
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--bigbench-cache", default=str(Path.home() / ".cache/hybridgate/bigbench"))
    ap.add_argument("--cache", default=str(OUT / "answers.jsonl"))
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    chosen = args.tasks.split(",")
    specs = read_tasks(bigbench_tarball(Path(args.bigbench_cache)))
    qs: list[dict] = []
    max_tokens = {}
    for task in chosen:
        names = [f"arithmetic/{s}" for s in ARITHMETIC] if task == "arithmetic" else [task]
        per = -(-args.per_task // len(names))
        for name in names:
            rng = random.Random(f"{name}:0")
            for q in questions(name, specs[name], per, rng)[:args.per_task]:
                q["task"] = task
                q["key"] = hashlib.sha256((ANSWERS_VERSION + q["prompt"]).encode()
                                          ).hexdigest()[:16]
                qs.append(q)
        max_tokens[task] = TASKS[task][1]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(args.cache)
    print(f"{len(qs)} questions from {len(chosen)} BIG-bench tasks", flush=True)
    replies = {m: answer_all(m, qs, max_tokens, cache) for m in (WEAK, STRONG)}
    for task in chosen:
        rows = [q for q in qs if q["task"] == task]
        w = [correct(q, replies[WEAK][q["key"]]) for q in rows]
        s = [correct(q, replies[STRONG][q["key"]]) for q in rows]
        with (out / f"bb_{task}.csv").open("w", newline="") as f:
            wr = csv.writer(f)
            wr.writerow(["prompt", "qwen2.5-coder-0.5b_correct", "qwen2.5-coder-1.5b_correct"])
            wr.writerows([q["prompt"], int(a), int(b)] for q, a, b in zip(rows, w, s,
                                                                          strict=True))
        print(f"{task:<28} n={len(rows):4d}  weak {sum(w) / len(rows):.2f}  "
              f"strong {sum(s) / len(rows):.2f}")


if __name__ == "__main__":
    main()
