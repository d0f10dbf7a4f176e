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

/* A task defines any of these to handle its interrupt; the others fall to Default_Handler. vectors.h names the
 * device's interrupts (TIM2_IRQHandler ...), or IRQ<n>_Handler on a board without a device header. */
#include "vectors.h"
uint32_t SystemCoreClock = FIRMLM_CORE_CLOCK_HZ; /* CMSIS's name for the core clock (Hz); a task may change it */
#define WEAK_HANDLER(name) void name(void) __attribute__((weak, alias("Default_Handler")))
WEAK_HANDLER(SVC_Handler);
WEAK_HANDLER(PendSV_Handler);
WEAK_HANDLER(SysTick_Handler);
#define DECLARE_IRQ(number, name) WEAK_HANDLER(name);
FIRMLM_IRQS(DECLARE_IRQ)
#define VECTOR(number, name) [16 + (number)] = name,

__attribute__((section(".isr_vector"), used)) void (*const firmlm_vectors[16 + FIRMLM_IRQ_COUNT])(void) = {
    (void (*)(void))&_estack, Reset_Handler, Fault_Handler /* NMI */, Fault_Handler /* HardFault */,
    Fault_Handler /* MemManage */, Fault_Handler /* BusFault */, Fault_Handler /* UsageFault */, 0, 0, 0, 0,
    SVC_Handler, Default_Handler /* DebugMon */, 0, PendSV_Handler, SysTick_Handler,
    [16 ... 16 + FIRMLM_IRQ_COUNT - 1] = Default_Handler, /* numbers the device leaves out */
    FIRMLM_IRQS(VECTOR)
};
