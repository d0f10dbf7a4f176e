/* firmlm exec: startup and C library hooks for Cortex-M tasks run in QEMU.
 *
 * Reset copies .data, clears .bss and calls main(); main's return value leaves QEMU as its exit status through
 * ARM semihosting (SYS_EXIT_EXTENDED). printf & co. write to the host's stdout through SYS_WRITE0. A fault (hard,
 * memory, bus, usage) exits with status 134 so a crash is told apart from a wrong answer; any other interrupt
 * that has no handler of the task's own exits with 135. Written for firmlm. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

extern uint32_t _estack, _sidata, _sdata, _edata, __bss_start__, __bss_end__, __end__;
int main(void);

static int semihost(int operation, void *argument)
{
    register int r0 __asm__("r0") = operation;
    register void *r1 __asm__("r1") = argument;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

__attribute__((noreturn)) void firmlm_exit(int status)
{
    uint32_t block[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, (uint32_t)status};
    semihost(0x20 /* SYS_EXIT_EXTENDED */, block);
    for (;;) {
    }
}

int _write(int fd, const char *buffer, int length)
{
    char chunk[65];
    (void)fd;
    for (int done = 0; done < length;) {
        int n = length - done > 64 ? 64 : length - done;
        memcpy(chunk, buffer + done, (size_t)n);
        chunk[n] = '\0';
        semihost(0x04 /* SYS_WRITE0 */, chunk);
        done += n;
    }
    return length;
}

void *_sbrk(int increment)
{
    static char *heap_end;
    if (heap_end == 0)
        heap_end = (char *)&__end__;
    char *previous = heap_end;
    if (heap_end + increment > (char *)&_estack - 2048) { /* keep 2 KiB of stack */
        errno = ENOMEM;
        return (void *)-1;
    }
    heap_end += increment;
    return previous;
}

void _exit(int status) { firmlm_exit(status); }
int _close(int fd) { (void)fd; return -1; }
int _fstat(int fd, struct stat *st) { (void)fd; st->st_mode = S_IFCHR; return 0; }
int _isatty(int fd) { (void)fd; return 1; }
int _lseek(int fd, int offset, int whence) { (void)fd; (void)offset; (void)whence; return 0; }
int _read(int fd, char *buffer, int length) { (void)fd; (void)buffer; (void)length; return 0; }
int _kill(int pid, int signal) { (void)pid; (void)signal; errno = EINVAL; return -1; }
int _getpid(void) { return 1; }

void Reset_Handler(void)
{
    uint32_t *source = &_sidata;
    for (uint32_t *target = &_sdata; target < &_edata;)
        *target++ = *source++;
    for (uint32_t *target = &__bss_start__; target < &__bss_end__;)
        *target++ = 0;
    firmlm_exit(main());
}

void Fault_Handler(void) { firmlm_exit(134); }
void Default_Handler(void) { firmlm_exit(135); }

/* A task defines any of these to handle its interrupt; the others fall to Default_Handler. */
#define WEAK_HANDLER(name) void name(void) __attribute__((weak, alias("Default_Handler")))
WEAK_HANDLER(SVC_Handler);
WEAK_HANDLER(PendSV_Handler);
WEAK_HANDLER(SysTick_Handler);
WEAK_HANDLER(IRQ0_Handler); WEAK_HANDLER(IRQ1_Handler); WEAK_HANDLER(IRQ2_Handler); WEAK_HANDLER(IRQ3_Handler);
WEAK_HANDLER(IRQ4_Handler); WEAK_HANDLER(IRQ5_Handler); WEAK_HANDLER(IRQ6_Handler); WEAK_HANDLER(IRQ7_Handler);
WEAK_HANDLER(IRQ8_Handler); WEAK_HANDLER(IRQ9_Handler); WEAK_HANDLER(IRQ10_Handler); WEAK_HANDLER(IRQ11_Handler);
WEAK_HANDLER(IRQ12_Handler); WEAK_HANDLER(IRQ13_Handler); WEAK_HANDLER(IRQ14_Handler); WEAK_HANDLER(IRQ15_Handler);
WEAK_HANDLER(IRQ16_Handler); WEAK_HANDLER(IRQ17_Handler); WEAK_HANDLER(IRQ18_Handler); WEAK_HANDLER(IRQ19_Handler);
WEAK_HANDLER(IRQ20_Handler); WEAK_HANDLER(IRQ21_Handler); WEAK_HANDLER(IRQ22_Handler); WEAK_HANDLER(IRQ23_Handler);
WEAK_HANDLER(IRQ24_Handler); WEAK_HANDLER(IRQ25_Handler); WEAK_HANDLER(IRQ26_Handler); WEAK_HANDLER(IRQ27_Handler);
WEAK_HANDLER(IRQ28_Handler); WEAK_HANDLER(IRQ29_Handler); WEAK_HANDLER(IRQ30_Handler); WEAK_HANDLER(IRQ31_Handler);
WEAK_HANDLER(IRQ32_Handler); WEAK_HANDLER(IRQ33_Handler); WEAK_HANDLER(IRQ34_Handler); WEAK_HANDLER(IRQ35_Handler);
WEAK_HANDLER(IRQ36_Handler); WEAK_HANDLER(IRQ37_Handler); WEAK_HANDLER(IRQ38_Handler); WEAK_HANDLER(IRQ39_Handler);
WEAK_HANDLER(IRQ40_Handler); WEAK_HANDLER(IRQ41_Handler); WEAK_HANDLER(IRQ42_Handler); WEAK_HANDLER(IRQ43_Handler);
WEAK_HANDLER(IRQ44_Handler); WEAK_HANDLER(IRQ45_Handler); WEAK_HANDLER(IRQ46_Handler); WEAK_HANDLER(IRQ47_Handler);
WEAK_HANDLER(IRQ48_Handler); WEAK_HANDLER(IRQ49_Handler); WEAK_HANDLER(IRQ50_Handler); WEAK_HANDLER(IRQ51_Handler);
WEAK_HANDLER(IRQ52_Handler); WEAK_HANDLER(IRQ53_Handler); WEAK_HANDLER(IRQ54_Handler); WEAK_HANDLER(IRQ55_Handler);
WEAK_HANDLER(IRQ56_Handler); WEAK_HANDLER(IRQ57_Handler); WEAK_HANDLER(IRQ58_Handler); WEAK_HANDLER(IRQ59_Handler);
WEAK_HANDLER(IRQ60_Handler); WEAK_HANDLER(IRQ61_Handler); WEAK_HANDLER(IRQ62_Handler); WEAK_HANDLER(IRQ63_Handler);

__attribute__((section(".isr_vector"), used)) void (*const firmlm_vectors[16 + 64])(void) = {
    (void (*)(void))&_estack, Reset_Handler, Fault_Handler /* NMI */, Fault_Handler /* HardFault */,
    Fault_Handler /* MemManage */, Fault_Handler /* BusFault */, Fault_Handler /* UsageFault */, 0, 0, 0, 0,
    SVC_Handler, Default_Handler /* DebugMon */, 0, PendSV_Handler, SysTick_Handler,
    IRQ0_Handler, IRQ1_Handler, IRQ2_Handler, IRQ3_Handler, IRQ4_Handler, IRQ5_Handler, IRQ6_Handler,
    IRQ7_Handler, IRQ8_Handler, IRQ9_Handler, IRQ10_Handler, IRQ11_Handler, IRQ12_Handler, IRQ13_Handler,
    IRQ14_Handler, IRQ15_Handler, IRQ16_Handler, IRQ17_Handler, IRQ18_Handler, IRQ19_Handler, IRQ20_Handler,
    IRQ21_Handler, IRQ22_Handler, IRQ23_Handler, IRQ24_Handler, IRQ25_Handler, IRQ26_Handler, IRQ27_Handler,
    IRQ28_Handler, IRQ29_Handler, IRQ30_Handler, IRQ31_Handler, IRQ32_Handler, IRQ33_Handler, IRQ34_Handler,
    IRQ35_Handler, IRQ36_Handler, IRQ37_Handler, IRQ38_Handler, IRQ39_Handler, IRQ40_Handler, IRQ41_Handler,
    IRQ42_Handler, IRQ43_Handler, IRQ44_Handler, IRQ45_Handler, IRQ46_Handler, IRQ47_Handler, IRQ48_Handler,
    IRQ49_Handler, IRQ50_Handler, IRQ51_Handler, IRQ52_Handler, IRQ53_Handler, IRQ54_Handler, IRQ55_Handler,
    IRQ56_Handler, IRQ57_Handler, IRQ58_Handler, IRQ59_Handler, IRQ60_Handler, IRQ61_Handler, IRQ62_Handler,
    IRQ63_Handler,
};
