import pytest

from firmlm.corpus.categories import load_rules
from firmlm.errors import ConfigError


@pytest.fixture
def cat():
    return load_rules()


def test_shipped_rules_cover_paper_categories(cat):
    regs = "\n".join(f"#define REG_{i} (0x{i * 4:08X}UL)" for i in range(40))
    assert cat("linux", "drivers/gpu/drm/amd/include/asic_reg/oss/oss_2_0_d.h", "") == "amd_gpu_registers"
    assert cat("u-boot", "arch/arm/dts/stm32mp157c.dtsi", "") == "device_tree"
    assert cat("linux", "drivers/tty/serial/stm32-usart.c", "") == "stm32_hal"
    assert cat("u-boot", "drivers/usb/host/ehci-mx6.c", "") == "nxp_imx"
    assert cat("linux", "drivers/usb/dwc2/core.c", "") == "usb_stack"
    assert cat("linux", "drivers/net/wireless/ti/wl1251/main.c", "") == "wireless_ble_wifi"
    assert cat("mbedtls", "library/aes.c", "") == "crypto"
    assert cat("atf", "lib/cpus/aarch64/cortex_a53.S", "ldr x0, =1\nmsr sctlr_el3, x0\nisb\ndsb sy\n") == "arm_cortex_asm"
    assert cat("avr-libc", "include/avr/io.h", regs) == "register_defines"
    assert cat("linux", "kernel/irq/manage.c", "int x;") == "linux_kernel"
    assert cat("lwip", "src/core/tcp.c", "int x;") == "general"
    assert cat.taken["default:general"] == 1


def test_avr_sfr_headers_are_register_defines(cat):
    text = "\n".join(f"#define PORT{c} _SFR_IO8(0x{i:02X})" for i, c in enumerate("ABCDEFG"))
    assert cat("avr-libc", "include/avr/iom8.h", text) == "register_defines"


def test_bad_rule_files_name_file_and_rule(tmp_path):
    f = tmp_path / "rules.yaml"
    f.write_text("rules:\n  - category: bogus\n    paths: ['*']\n")
    with pytest.raises(ConfigError, match=r"rules\[0\].category.*unknown category 'bogus'"):
        load_rules(f)
    f.write_text("rules:\n  - category: crypto\n    content: '(unclosed'\n")
    with pytest.raises(ConfigError, match="does not compile"):
        load_rules(f)
    f.write_text("nothing: here\n")
    with pytest.raises(ConfigError, match="rules"):
        load_rules(f)
    with pytest.raises(ConfigError, match="not found"):
        load_rules(tmp_path / "missing.yaml")


def test_custom_rule_file(tmp_path):
    f = tmp_path / "rules.yaml"
    f.write_text("rules:\n  - category: zephyr_rtos\n    repos: ['my-rtos*']\n")
    cat = load_rules(f)
    assert cat("my-rtos-fork", "kernel/sched.c", "") == "zephyr_rtos"
    assert cat.taken == {"rule0:zephyr_rtos": 1}
