"""Steps -> token ids + the positions that score each step, one pure function per PRM family.

This is the "which positions" third of the engine (vLLM's pooling code splits a PRM the same
way: which positions, which head, which activation). Every function here is pure: text and a
tokenizer in, an :class:`Encoded` out; no torch, no model. The positions are chosen so that the
model output at ``positions[i]`` in ONE pass over the whole trace equals the output at the last
scored position of the prefix ``steps[: i + 1]`` formatted alone (causal attention sees only
what comes before), which is what makes one forward pass per trace exact.

Step text is untrusted: a separator or tag string inside a step would add a scoring position,
so it is removed from the step text first (:func:`clean_step`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scoring.prm.contract import FormattingError, TraceInput

# Qwen2.5-Math-PRM model card: system prompt, steps joined by "<extra_0>" and ending with it.
QWEN_PRM_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."
QWEN_PRM_SEPARATOR = "<extra_0>"
# TRL PRMConfig.step_separator default.
TRL_STEP_SEPARATOR = "\n"
# Math-Shepherd (peiyi9979/math-shepherd-mistral-7b-prm) usage: tag, good / bad tokens.
MATH_SHEPHERD_TAG = "ки"
MATH_SHEPHERD_STEP_PREFIX = "Step {n}: "


@dataclass(frozen=True)
class Encoded:
    """Token ids of one formatted trace and, per step, the index of the token that scores it.

    ``trajectory_position`` is where a trajectory-level score is read (the last token) when the
    backend produces one.
    """

    input_ids: list[int]
    positions: list[int]
    trajectory_position: int | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


def clean_step(text: str, forbidden: Sequence[str]) -> str:
    """Remove separator / tag strings from untrusted step text so they cannot add positions.

    >>> clean_step("a <extra_0> b", ["<extra_0>"])
    'a  b'
    """
    for marker in forbidden:
        if marker:
            text = text.replace(marker, "")
    return text


def positions_of(input_ids: Sequence[int], token_id: int) -> list[int]:
    """Indices where ``token_id`` occurs (separator / tag positions).

    >>> positions_of([5, 9, 7, 9, 9], 9)
    [1, 3, 4]
    """
    return [i for i, t in enumerate(input_ids) if t == token_id]


def join_steps(
    prefix_ids: Sequence[int],
    step_ids: Sequence[Sequence[int]],
    separator_ids: Sequence[int],
    suffix_ids: Sequence[int] = (),
) -> Encoded:
    """TRL ``PRMTrainer.tokenize_row`` layout: prefix, then each step followed by the separator
    ids; a step is scored at the LAST token of (step + separator).

    >>> enc = join_steps([1, 2], [[10, 11], [12]], [0])
    >>> enc.input_ids, enc.positions
    ([1, 2, 10, 11, 0, 12, 0], [4, 6])
    """
    ids = list(prefix_ids)
    positions: list[int] = []
    for step in step_ids:
        ids.extend(step)
        ids.extend(separator_ids)
        if not step and not separator_ids:
            raise FormattingError("an empty step with an empty separator has no position")
        positions.append(len(ids) - 1)
    ids.extend(suffix_ids)
    return Encoded(ids, positions)


def expect_positions(enc: Encoded, n_steps: int, what: str) -> Encoded:
    """Fail loudly when the number of scoring positions is not the number of steps.

    >>> expect_positions(Encoded([1, 2], [1]), 2, "sep")
    Traceback (most recent call last):
    ...
    scoring.prm.contract.FormattingError: sep: found 1 scoring positions for 2 steps
    """
    if len(enc.positions) != n_steps:
        raise FormattingError(
            f"{what}: found {len(enc.positions)} scoring positions for {n_steps} steps"
        )
    return enc


def single_token_id(tokenizer: Any, text: str) -> int:
    """The id of a string that must be exactly one token (a separator or tag)."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1:
        raise FormattingError(f"{text!r} is {len(ids)} tokens for this tokenizer, expected 1")
    return int(ids[0])


# --- Qwen2.5-Math-PRM / ReasonFlux-PRM-7B: chat template, steps joined by a separator token ---


def format_separator_chat(
    tokenizer: Any,
    trace: TraceInput,
    *,
    separator: str = QWEN_PRM_SEPARATOR,
    system_prompt: str | None = QWEN_PRM_SYSTEM_PROMPT,
) -> Encoded:
    """Qwen2.5-Math-PRM model card: system + user (problem) + assistant (steps joined by the
    separator and ending with it), chat template without generation prompt, then the separator
    positions. Tokenised without extra special tokens: the template already has them.
    """
    sep_id = single_token_id(tokenizer, separator)
    steps = [clean_step(s, [separator]) for s in trace.steps]
    messages = []
    if system_prompt is not None:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": clean_step(trace.problem, [separator])})
    messages.append({"role": "assistant", "content": separator.join(steps) + separator})
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    enc = Encoded(ids, positions_of(ids, sep_id))
    return expect_positions(enc, len(steps), f"separator {separator!r}")


# --- TRL PRMTrainer-trained AutoModelForTokenClassification ---


def format_trl(
    tokenizer: Any, trace: TraceInput, *, step_separator: str = TRL_STEP_SEPARATOR
) -> Encoded:
    """TRL ``PRMTrainer.tokenize_row``: prompt ids (BOS first when the tokenizer has one), each
    completion step tokenised alone plus the separator ids, label at the last token of each."""
    prompt_ids = list(tokenizer(trace.problem, add_special_tokens=False)["input_ids"])
    if tokenizer.bos_token_id is not None:
        prompt_ids = [tokenizer.bos_token_id, *prompt_ids]
    separator_ids = tokenizer.encode(step_separator, add_special_tokens=False)
    step_ids = [tokenizer(s, add_special_tokens=False)["input_ids"] for s in trace.steps]
    return join_steps(prompt_ids, step_ids, separator_ids)


# --- Math-Shepherd: "Step n: ... ки" lines after the question, tag positions ---


def number_step(step_prefix: str, n: int, text: str) -> str:
    """Step ``n`` with its number written once: where the number lives.

    A step's text holds its number when its source wrote one (steplens' Math-Shepherd importer
    keeps "Step 1: ..." as the record has it); a layout that numbers steps (Math-Shepherd's
    lines, R-PRM's "Step k:") adds ``step_prefix`` only to a step that does not already start
    with its own number. annotate.formats.math_shepherd.numbered_step is the same rule for the
    importer and the exporter (the app layers keep the two packages apart; a test pins them).

    >>> number_step("Step {n}: ", 2, "So 3")
    'Step 2: So 3'
    >>> number_step("Step {n}: ", 2, "Step 2: So 3")
    'Step 2: So 3'
    >>> number_step("Step {n}: ", 2, "Step 1: So 3")
    'Step 2: Step 1: So 3'
    """
    prefix = step_prefix.format(n=n)
    return text if text.startswith(prefix.rstrip()) else prefix + text


def format_math_shepherd(
    tokenizer: Any,
    trace: TraceInput,
    *,
    tag: str = MATH_SHEPHERD_TAG,
    step_prefix: str = MATH_SHEPHERD_STEP_PREFIX,
) -> Encoded:
    """Math-Shepherd usage: ``f"{question} {output}"`` where output is ``"Step n: <step> ки"``
    lines joined by newlines; ``tokenizer.encode`` (with its special tokens); the step is scored
    at each tag token (the tag id is the last id of ``encode(tag)``)."""
    tag_id = tokenizer.encode(tag, add_special_tokens=False)[-1]
    lines = [
        f"{number_step(step_prefix, i + 1, clean_step(s, [tag]).strip())} {tag}"
        for i, s in enumerate(trace.steps)
    ]
    text = f"{clean_step(trace.problem, [tag])} " + "\n".join(lines)
    ids = list(tokenizer.encode(text))
    enc = Encoded(ids, positions_of(ids, tag_id))
    return expect_positions(enc, len(lines), f"tag {tag!r}")


# --- RLHFlow PRMs: multi-turn chat, every step a user turn answered "+", teacher-forced ---


RLHFLOW_PROBLEM_JOINER = " "


def rlhflow_messages(
    trace: TraceInput, *, good: str = "+", problem_joiner: str = RLHFLOW_PROBLEM_JOINER
) -> list[dict[str, str]]:
    """RLHFlow's ``math-rm/prm_evaluate.py`` (lines 47-57): every step stripped; the first user
    turn is problem + " " + first step, each later step its own user turn; every assistant turn
    is the good token. (ProcessBench's ``code/run_eval_prm_rlhflow.py`` line 40 joins problem and
    first step with a blank line: ``problem_joiner="\\n\\n"``.)

    >>> [m["content"] for m in rlhflow_messages(TraceInput("Q?", [" a ", "b\\n"]))]
    ['Q? a', '+', 'b', '+']
    """
    messages: list[dict[str, str]] = []
    for k, step in enumerate(trace.steps):
        text = f"{trace.problem}{problem_joiner}{step.strip()}" if k == 0 else step.strip()
        messages.append({"role": "user", "content": text})
        messages.append({"role": "assistant", "content": good})
    return messages


def format_chat_turns(
    tokenizer: Any,
    trace: TraceInput,
    *,
    good: str = "+",
    problem_joiner: str = RLHFLOW_PROBLEM_JOINER,
) -> Encoded:
    """The whole conversation in ONE sequence; step k is scored at the position that predicts
    the k-th assistant ``good`` token (the reference code reads logits[-3] of each prefix
    conversation, i.e. the token before "+<|eot_id|>"; here the position is found from the
    template's own text, so any chat template works).
    """
    messages = rlhflow_messages(trace, good=good, problem_joiner=problem_joiner)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    offsets = list(enc["offset_mapping"])
    good_id = tokenizer.encode(good, add_special_tokens=False)[-1]
    positions: list[int] = []
    for k in range(len(trace.steps)):
        prefix = tokenizer.apply_chat_template(messages[: 2 * k + 2], tokenize=False)
        if not full.startswith(prefix):
            raise FormattingError("chat template does not render prefixes as prefixes")
        char = prefix.rfind(good)
        token = _token_at_char(offsets, char)
        if token is None or token == 0 or ids[token] != good_id:
            raise FormattingError(f"assistant turn {k}: {good!r} is not a token of its own")
        positions.append(token - 1)
    return Encoded(ids, positions)


def _token_at_char(offsets: Sequence[tuple[int, int]], char: int) -> int | None:
    """Index of the token whose character span starts at ``char``.

    >>> _token_at_char([(0, 2), (2, 3), (3, 5)], 2)
    1
    """
    for i, (start, end) in enumerate(offsets):
        if start == char and end > start:
            return i
    return None


# --- Skywork-PRM (value head): BOS + problem + "\n", each step + step token, flag at its end ---


def format_value_steps(tokenizer: Any, trace: TraceInput, *, step_token: str = "\n") -> Encoded:
    """Skywork-o1-PRM ``prepare_input`` (skywork-o1-prm-inference, ``model_utils/io_utils.py``
    lines 4-23): ``encode(bos + problem + "\\n")``, then the response split on EVERY step token,
    each line's ids (none for an empty line) followed by the step token id, a reward flag there.

    Skywork's "step" is a line; a steplens step may hold several. Its lines are laid out exactly
    as Skywork lays out the response, and the step is read where Skywork reads its LAST line (the
    step token after it): the value of the whole step so far, as Skywork's own code scores it.
    """
    bos = tokenizer.bos_token or ""
    prompt_ids = list(tokenizer.encode(bos + trace.problem + "\n"))
    step_token_id = tokenizer.encode(step_token)[-1]
    ids = list(prompt_ids)
    positions: list[int] = []
    for step in trace.steps:
        for line in step.split(step_token):
            if line != "":
                ids.extend(tokenizer.encode(line))
            ids.append(step_token_id)
        positions.append(len(ids) - 1)
    return Encoded(ids, positions)


def prefix_trace(trace: TraceInput, n_steps: int) -> TraceInput:
    """The trace cut after its first ``n_steps`` steps (what one-prefix-at-a-time scoring sees).

    >>> prefix_trace(TraceInput("q", ["a", "b", "c"], key="t"), 2).steps
    ['a', 'b']
    """
    parts = list(trace.parts[:n_steps]) if trace.parts is not None else None
    return TraceInput(
        trace.problem, list(trace.steps[:n_steps]), parts, trace.reference_answer, trace.key
    )
