"""Solutions built and run, and every failure put in its class."""

from __future__ import annotations

import shutil

import pytest

from firmlm.exec.runner import evaluate_solution
from firmlm.exec.targets import target_for
from firmlm.exec.tasks import ExecTask, UnmodelledWrite

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")

TASK = ExecTask(id="add", level=1, target="host", prompt="int add(int a, int b)\n{", instruction="Write add.",
                harness='#include <stdio.h>\nint add(int a, int b);\nint main(void) { printf("%d\\n", add(2, 3)); '
                        'return 0; }\n',
                expected_output="5\n", time_limit_s=2, reference="int add(int a, int b) { return a + b; }\n",
                wrong=["int add(int a, int b) { return a - b; }\n"])


@pytest.mark.parametrize("source, stage", [
    ("int add(int a, int b) { return a + b; }\n", "passed"),
    ("int add(int a, int b) { return a - b; }\n", "wrong_output"),
    ("int add(int a, int b) { return a + b }\n", "syntax_error"),
    ("int add(int a, int b) { return a + c; }\n", "compile_error"),
    ("int plus(int a, int b) { return a + b; }\n", "link_error"),
    ("int add(int a, int b) { for (;;) {} }\n", "timeout"),
    ("#include <stdlib.h>\nint add(int a, int b) { abort(); }\n", "runtime_fault"),
    ("#include <stdlib.h>\nint add(int a, int b) { exit(2); }\n", "runtime_fault"),
    ("", "unparseable"),
    (None, "unparseable"),
])
def test_outcome_classes(source, stage):
    outcome = evaluate_solution(TASK, source)
    assert outcome.stage == stage, outcome
    assert outcome.passed == (stage == "passed")


def test_a_link_error_names_the_missing_symbol():
    outcome = evaluate_solution(TASK, "int plus(int a, int b) { return a + b; }\n")
    assert outcome.stage == "link_error" and "undefined reference to `add'" in outcome.detail


def test_a_missing_main_is_its_own_class():
    task = TASK.model_copy(update={"harness": "int add(int a, int b);\nint use(void) { return add(1, 2); }\n"})
    assert evaluate_solution(task, TASK.reference).stage == "missing_entry"


def test_a_target_without_its_toolchain_is_unsupported_with_the_reason(monkeypatch):
    from firmlm.exec import targets

    monkeypatch.setitem(targets.TARGETS, "host", targets.HostTarget(compiler="no-such-compiler"))
    outcome = evaluate_solution(TASK, TASK.reference)
    assert outcome.stage == "unsupported" and "no-such-compiler" in outcome.detail


RTL = pytest.mark.skipif(target_for("rtl-iverilog").unavailable() is not None,
                         reason=str(target_for("rtl-iverilog").unavailable()))
INVERTER = ExecTask(id="inv", level=1, target="rtl-iverilog", prompt="module inv(", instruction="Write inv.",
                    harness="module tb; reg a = 0; wire y; inv dut(.a(a), .y(y));\n"
                            "initial begin #1 $display(\"%0d\", y); a = 1; #1 $display(\"%0d\", y); $finish; end\n"
                            "endmodule\n",
                    expected_output="1\n0\n", reference="module inv(input wire a, output wire y); assign y = ~a; endmodule\n",
                    wrong=["module inv(input wire a, output wire y); assign y = a; endmodule\n"])


@RTL
@pytest.mark.parametrize("source, stage", [
    ("module inv(input wire a, output wire y); assign y = ~a; endmodule\n", "passed"),
    ("module inv(input wire a, output wire y); assign y = a; endmodule\n", "wrong_output"),
    ("module inv(input wire a, output wire y) assign y = ~a; endmodule\n", "syntax_error"),
    ("module not_inv(input wire a, output wire y); assign y = ~a; endmodule\n", "link_error"),
])
def test_rtl_is_simulated_with_icarus(source, stage):
    assert evaluate_solution(INVERTER, source).stage == stage


QEMU = pytest.mark.skipif(target_for("qemu-stm32f405").unavailable() is not None,
                          reason=str(target_for("qemu-stm32f405").unavailable()))
FIRMWARE = TASK.model_copy(update={
    "target": "qemu-stm32f405", "time_limit_s": 5,
    "harness": '#include <stdio.h>\n#include <stdint.h>\nint add(int a, int b);\n'
               'int main(void) { printf("%d\\n", add(2, 3)); return add(0, 0); }\n'})


@QEMU
@pytest.mark.parametrize("source, stage", [
    ("int add(int a, int b) { return a + b; }\n", "passed"),
    ("int add(int a, int b) { return a * b; }\n", "wrong_output"),
    ("int add(int a, int b) { return a + b + (a == 0); }\n", "runtime_fault"),  # main returns 1: the exit status
    ("#include <stdint.h>\nint add(int a, int b) { return *(volatile int *)0xF0000000u + a + b; }\n",
     "runtime_fault"),  # a bus fault: exit 134
    ("int add(int a, int b) { for (;;) {} }\n", "timeout"),
    ("int add(int a, int b) { return a + GPIOA->ODR; }\n", "compile_error"),  # no device header declares it
    ("int add(int a, int b) { return HAL_Add(a, b); }\n", "link_error"),  # an undefined HAL function
])
def test_firmware_runs_in_qemu_with_the_same_classes(source, stage):
    outcome = evaluate_solution(FIRMWARE, source)
    assert outcome.stage == stage, outcome


CPP = TASK.model_copy(update={
    "target": "host-cpp", "kind": "general",
    "harness": '#include <cstdio>\n#include <vector>\nint total(const std::vector<int> &v);\n'
               'int main() { std::printf("%d\\n", total({2, 3})); return 0; }\n'})


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
@pytest.mark.parametrize("source, stage", [
    ("#include <numeric>\n#include <vector>\n"
     "int total(const std::vector<int> &v) { return std::accumulate(v.begin(), v.end(), 0); }\n", "passed"),
    ("#include <vector>\nint total(const std::vector<int> &v) { return (int)v.size(); }\n", "wrong_output"),
    ("#include <vector>\nint total(std::vector<int> &v) { return 5; }\n", "link_error"),  # another overload
])
def test_cpp_tasks_build_with_gxx(source, stage):
    assert evaluate_solution(CPP, source).stage == stage


@QEMU
def test_device_headers_and_vendor_handler_names():
    """stm32f4xx.h gives CMSIS names; an interrupt reaches TIM2_IRQHandler, and a misnamed handler is reported as an
    interrupt without a handler."""
    harness = ('#include <stdio.h>\n#include "stm32f4xx.h"\nvoid tick_start(void);\nvolatile unsigned ticks;\n'
               'int main(void) { tick_start(); for (volatile int i = 0; i < 5000000 && ticks < 3; i++) {}\n'
               '    TIM2->CR1 = 0; printf("%d\\n", ticks >= 3); return 0; }\n')
    body = ("TIM2->PSC = 0; TIM2->ARR = 20000; TIM2->DIER = TIM_DIER_UIE; NVIC_EnableIRQ(TIM2_IRQn); "
            "TIM2->CR1 = TIM_CR1_CEN; }\n")
    task = FIRMWARE.model_copy(update={"harness": harness, "expected_output": "1\n", "time_limit_s": 10})
    good = ('#include "stm32f4xx.h"\nextern volatile unsigned ticks;\n'
            'void TIM2_IRQHandler(void) { TIM2->SR = 0; ticks++; }\nvoid tick_start(void) { ' + body)
    assert evaluate_solution(task, good).stage == "passed"
    misnamed = evaluate_solution(task, good.replace("TIM2_IRQHandler", "TIM2_Handler"))
    assert misnamed.stage == "runtime_fault" and "an interrupt without a handler (exit status 135)" in misnamed.detail


@QEMU
def test_unmodelled_writes_are_read_from_qemus_log():
    task = FIRMWARE.model_copy(update={
        "harness": "void clock_on(void);\nint main(void) { clock_on(); return 0; }\n", "expected_output": None,
        "unmodelled_writes": [UnmodelledWrite(device="RCC", offset=0x40, bits=1 << 17, why="USART2 clock")]})
    on = '#include "stm32f4xx.h"\nvoid clock_on(void) { RCC->APB1ENR |= RCC_APB1ENR_USART2EN; }\n'
    assert evaluate_solution(task, on).stage == "passed"
    other = evaluate_solution(task, on.replace("USART2EN", "USART3EN"))
    assert other.stage == "wrong_output"
    assert other.detail == "never set bits 0x20000 of RCC+0x040, USART2 clock (wrote 0x40000)"


@QEMU
def test_the_uart_text_is_checked():
    task = FIRMWARE.model_copy(update={
        "harness": "void say(const char *text);\nint main(void) { say(\"ok\\r\\n\"); return 0; }\n",
        "expected_output": None, "expected_uart": "ok\r\n"})
    source = ('#include "stm32f4xx.h"\nvoid say(const char *text) { USART1->CR1 = USART_CR1_UE | USART_CR1_TE;\n'
              '    while (*text) { while (!(USART1->SR & USART_SR_TXE)) {} USART1->DR = (uint8_t)*text++; } }\n')
    assert evaluate_solution(task, source).stage == "passed"
    lost = evaluate_solution(task, source.replace("USART1->DR", "USART2->DR"))
    assert lost.stage == "wrong_output" and lost.detail == "the UART sent '', expected 'ok\\r\\n'"


def test_the_build_log_is_kept_and_truncated():
    outcome = evaluate_solution(TASK, "int add(int a, int b) { return a + c; }\n" * 200)
    assert outcome.stage == "compile_error" and "error" in outcome.detail
    assert 0 < len(outcome.log) <= 2001
