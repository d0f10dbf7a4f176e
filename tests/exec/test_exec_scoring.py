"""Answers to solution files, pass@k, and the failure distribution."""

from __future__ import annotations

from math import comb

import pytest

from firmlm.exec.scoring import chat_solution, completion_solution, pass_at_k, summarize, veriscope_score

PROMPT = "#include <stdint.h>\n/* sum */\nint add(int a, int b)\n{\n"


def test_a_completion_is_cut_where_the_function_closes():
    completion = "    return a + b; /* } not this one */\n}\n\nint main(void) { return add(1, 2); }\n"
    solution = completion_solution(PROMPT, completion)
    assert solution == PROMPT + "    return a + b; /* } not this one */\n}\n"


def test_nested_braces_and_strings_do_not_end_the_body():
    completion = '    if (a) { const char *s = "}"; (void)s; }\n    return b;\n}\nint junk;'
    assert completion_solution(PROMPT, completion).endswith("return b;\n}\n")


def test_an_unfinished_body_is_kept_for_the_compiler_to_reject():
    assert completion_solution(PROMPT, "    return a +") == PROMPT + "    return a +\n"
    assert completion_solution(PROMPT, "  \n") is None


def test_a_prompt_without_an_open_body_keeps_the_whole_completion():
    assert completion_solution("#include <stdint.h>\n", "int f(void) { return 1; }\n") == \
        "#include <stdint.h>\nint f(void) { return 1; }\n"


def test_chat_answers():
    answer = "Here you go:\n```python\nprint(1)\n```\nand in C:\n```c\nint add(int a, int b) { return a + b; }\n```\n"
    assert chat_solution(answer) == "int add(int a, int b) { return a + b; }\n"
    assert chat_solution("int add(int a, int b)\n{\n    return a + b;\n}") .startswith("int add")
    assert chat_solution("I cannot help with that.") is None
    assert chat_solution("```\nint add(int a, int b) { return a + b; }") == "int add(int a, int b) { return a + b; }\n"
    rtl = "Sure:\n```verilog\nmodule inv(input a, output y); assign y = ~a; endmodule\n```\n"
    assert chat_solution(rtl, verilog=True) == "module inv(input a, output y); assign y = ~a; endmodule\n"
    assert chat_solution(rtl) is None  # not C


def test_pass_at_k_is_the_unbiased_estimator():
    assert pass_at_k(10, 0, 1) == 0.0 and pass_at_k(10, 10, 5) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - comb(7, 5) / comb(10, 5))
    assert pass_at_k(4, 1, 4) == 1.0
    with pytest.raises(ValueError, match="k=5 is more than the 4 samples"):
        pass_at_k(4, 1, 5)


def test_summary_per_level_and_failure_shares():
    outcomes = [("a", 1, "passed"), ("a", 1, "wrong_output"), ("b", 1, "link_error"), ("b", 1, "link_error"),
                ("c", 3, "timeout"), ("c", 3, "passed"), ("d", 3, "unsupported"), ("d", 3, "unsupported")]
    result = summarize(outcomes, ks=(1, 2))
    assert result["tasks"] == 3 and result["samples"] == 6  # task d cannot run here: counted apart
    assert result["pass_at"]["1"] == pytest.approx((0.5 + 0 + 0.5) / 3)
    assert result["per_level"]["1"]["pass@2"] == pytest.approx(0.5)
    assert result["failures"] == {"link_error": 2, "timeout": 1, "wrong_output": 1}
    assert result["failure_share"]["link_error"] == pytest.approx(0.5) and result["unsupported"] == 2


def test_veriscope_scores_build_then_behaviour():
    assert veriscope_score(["passed", "wrong_output", "syntax_error", "unsupported"]) == pytest.approx(50.0)
    assert veriscope_score(["timeout"]) == 50.0 and veriscope_score(["link_error"]) == 0.0
    assert veriscope_score(["unsupported"]) is None


def test_a_completion_keeps_the_functions_the_prompt_still_owes():
    prompt = ("volatile int ticks;\nvoid TIM3_IRQHandler(void);\nstatic int helper(int x) { return x + 1; }\n"
              "void start(void)\n{\n")
    completion = ("    ticks = helper(0);\n}\n\n/* the handler */\nvoid TIM3_IRQHandler(void)\n{\n    ticks++;\n}\n"
                  "int main(void)\n{\n    return 0;\n}\n")
    solution = completion_solution(prompt, completion)
    assert "void TIM3_IRQHandler(void)\n{\n    ticks++;\n}" in solution and "int main" not in solution
    assert "main" not in completion_solution(prompt, "    ticks = 1;\n}\nint main(void) { return 0; }\n")


def test_calls_in_the_prompts_bodies_are_not_owed_functions():
    from firmlm.exec.scoring import owed_functions

    prompt = ("#include <stdint.h>\nint f(void);\nint g(void) { return h(2); }\nclass C {\npublic:\n"
              "    int get(int k);\n    void put(int k);\n};\nint C::get(int k)\n{\n")
    assert owed_functions(prompt) == {"f", "put"}
