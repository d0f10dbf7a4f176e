/* core_cm.h: the Cortex-M core registers and intrinsics for firmlm exec tasks (ARMv6-M and ARMv7-M), written
 * for firmlm from the ARM architecture reference manuals: NVIC, SCB, SysTick and the CMSIS-Core function names
 * firmware uses (NVIC_EnableIRQ, SysTick_Config, __enable_irq ...). A device header (stm32f4xx.h, nrf51.h)
 * defines IRQn_Type before including it; alone (mps2-an386) it declares the core exceptions only. */
#ifndef FIRMLM_CORE_CM_H
#define FIRMLM_CORE_CM_H

#include <stdint.h>

#define __I volatile const
#define __O volatile
#define __IO volatile
#define __STATIC_INLINE static inline

#ifndef FIRMLM_DEVICE_IRQN
typedef enum {
    NonMaskableInt_IRQn = -14,
    HardFault_IRQn = -13,
    SVCall_IRQn = -5,
    PendSV_IRQn = -2,
    SysTick_IRQn = -1,
} IRQn_Type;
#endif

typedef struct {
    __IO uint32_t ISER[8]; /* 0xE000E100: set-enable */
    uint32_t RESERVED0[24];
    __IO uint32_t ICER[8]; /* 0xE000E180: clear-enable */
    uint32_t RESERVED1[24];
    __IO uint32_t ISPR[8]; /* 0xE000E200: set-pending */
    uint32_t RESERVED2[24];
    __IO uint32_t ICPR[8]; /* 0xE000E280: clear-pending */
    uint32_t RESERVED3[24];
    __IO uint32_t IABR[8]; /* 0xE000E300: active */
    uint32_t RESERVED4[56];
    __IO uint32_t IPR[60]; /* 0xE000E400: priority, four 8-bit fields per word (word access works on ARMv6-M) */
} NVIC_Type;

typedef struct {
    __I uint32_t CPUID; /* 0xE000ED00 */
    __IO uint32_t ICSR;
    __IO uint32_t VTOR;
    __IO uint32_t AIRCR;
    __IO uint32_t SCR;
    __IO uint32_t CCR;
    __IO uint32_t SHPR[3]; /* system handler priorities: SHPR[2] holds PendSV (bits 23:16) and SysTick (31:24) */
    __IO uint32_t SHCSR;
    __IO uint32_t CFSR; /* ARMv7-M only, as are the rest */
    __IO uint32_t HFSR;
    __IO uint32_t DFSR;
    __IO uint32_t MMFAR;
    __IO uint32_t BFAR;
} SCB_Type;

typedef struct {
    __IO uint32_t CTRL; /* 0xE000E010 */
    __IO uint32_t LOAD;
    __IO uint32_t VAL;
    __I uint32_t CALIB;
} SysTick_Type;

#define SCS_BASE 0xE000E000UL
#define SysTick_BASE (SCS_BASE + 0x0010UL)
#define NVIC_BASE (SCS_BASE + 0x0100UL)
#define SCB_BASE (SCS_BASE + 0x0D00UL)
#define SysTick ((SysTick_Type *)SysTick_BASE)
#define NVIC ((NVIC_Type *)NVIC_BASE)
#define SCB ((SCB_Type *)SCB_BASE)

#define SysTick_CTRL_ENABLE_Pos 0U
#define SysTick_CTRL_ENABLE_Msk (1UL << SysTick_CTRL_ENABLE_Pos)
#define SysTick_CTRL_TICKINT_Pos 1U
#define SysTick_CTRL_TICKINT_Msk (1UL << SysTick_CTRL_TICKINT_Pos)
#define SysTick_CTRL_CLKSOURCE_Pos 2U
#define SysTick_CTRL_CLKSOURCE_Msk (1UL << SysTick_CTRL_CLKSOURCE_Pos)
#define SysTick_CTRL_COUNTFLAG_Pos 16U
#define SysTick_CTRL_COUNTFLAG_Msk (1UL << SysTick_CTRL_COUNTFLAG_Pos)
#define SysTick_LOAD_RELOAD_Msk 0x00FFFFFFUL
#define SCB_ICSR_PENDSVSET_Msk (1UL << 28)
#define SCB_ICSR_PENDSTSET_Msk (1UL << 26)
#define SCB_ICSR_VECTACTIVE_Msk 0x1FFUL

#ifndef __NVIC_PRIO_BITS
#define __NVIC_PRIO_BITS 4U
#endif

__STATIC_INLINE void __enable_irq(void) { __asm__ volatile("cpsie i" ::: "memory"); }
__STATIC_INLINE void __disable_irq(void) { __asm__ volatile("cpsid i" ::: "memory"); }
__STATIC_INLINE void __DSB(void) { __asm__ volatile("dsb 0xF" ::: "memory"); }
__STATIC_INLINE void __ISB(void) { __asm__ volatile("isb 0xF" ::: "memory"); }
__STATIC_INLINE void __DMB(void) { __asm__ volatile("dmb 0xF" ::: "memory"); }
__STATIC_INLINE void __WFI(void) { __asm__ volatile("wfi"); }
__STATIC_INLINE void __NOP(void) { __asm__ volatile("nop"); }
__STATIC_INLINE uint32_t __get_PRIMASK(void)
{
    uint32_t value;
    __asm__ volatile("mrs %0, primask" : "=r"(value));
    return value;
}
__STATIC_INLINE void __set_PRIMASK(uint32_t value) { __asm__ volatile("msr primask, %0" ::"r"(value) : "memory"); }

__STATIC_INLINE void NVIC_EnableIRQ(IRQn_Type irq)
{
    if ((int32_t)irq >= 0)
        NVIC->ISER[(uint32_t)irq >> 5] = 1UL << ((uint32_t)irq & 31U);
}
__STATIC_INLINE void NVIC_DisableIRQ(IRQn_Type irq)
{
    if ((int32_t)irq >= 0) {
        NVIC->ICER[(uint32_t)irq >> 5] = 1UL << ((uint32_t)irq & 31U);
        __DSB();
        __ISB();
    }
}
__STATIC_INLINE uint32_t NVIC_GetEnableIRQ(IRQn_Type irq)
{
    return (int32_t)irq >= 0 ? (NVIC->ISER[(uint32_t)irq >> 5] >> ((uint32_t)irq & 31U)) & 1UL : 0UL;
}
__STATIC_INLINE void NVIC_SetPendingIRQ(IRQn_Type irq)
{
    if ((int32_t)irq >= 0)
        NVIC->ISPR[(uint32_t)irq >> 5] = 1UL << ((uint32_t)irq & 31U);
}
__STATIC_INLINE void NVIC_ClearPendingIRQ(IRQn_Type irq)
{
    if ((int32_t)irq >= 0)
        NVIC->ICPR[(uint32_t)irq >> 5] = 1UL << ((uint32_t)irq & 31U);
}
__STATIC_INLINE uint32_t NVIC_GetPendingIRQ(IRQn_Type irq)
{
    return (int32_t)irq >= 0 ? (NVIC->ISPR[(uint32_t)irq >> 5] >> ((uint32_t)irq & 31U)) & 1UL : 0UL;
}
/* The priority's top __NVIC_PRIO_BITS bits are implemented; core exceptions go to SCB->SHPR. */
__STATIC_INLINE void NVIC_SetPriority(IRQn_Type irq, uint32_t priority)
{
    uint32_t value = (priority << (8U - __NVIC_PRIO_BITS)) & 0xFFUL;
    int32_t n = (int32_t)irq;
    volatile uint32_t *word = n >= 0 ? &NVIC->IPR[n >> 2] : &SCB->SHPR[((uint32_t)(n + 16) >> 2) - 1U];
    uint32_t shift = ((uint32_t)(n >= 0 ? n : n + 16) & 3U) * 8U;
    *word = (*word & ~(0xFFUL << shift)) | (value << shift);
}
__STATIC_INLINE uint32_t NVIC_GetPriority(IRQn_Type irq)
{
    int32_t n = (int32_t)irq;
    volatile uint32_t *word = n >= 0 ? &NVIC->IPR[n >> 2] : &SCB->SHPR[((uint32_t)(n + 16) >> 2) - 1U];
    uint32_t shift = ((uint32_t)(n >= 0 ? n : n + 16) & 3U) * 8U;
    return ((*word >> shift) & 0xFFUL) >> (8U - __NVIC_PRIO_BITS);
}
/* SysTick interrupts every `ticks` processor clocks, at the lowest priority; 1 when ticks does not fit 24 bits. */
__STATIC_INLINE uint32_t SysTick_Config(uint32_t ticks)
{
    if (ticks == 0U || ticks - 1UL > SysTick_LOAD_RELOAD_Msk)
        return 1UL;
    SysTick->LOAD = ticks - 1UL;
    NVIC_SetPriority(SysTick_IRQn, (1UL << __NVIC_PRIO_BITS) - 1UL);
    SysTick->VAL = 0UL;
    SysTick->CTRL = SysTick_CTRL_CLKSOURCE_Msk | SysTick_CTRL_TICKINT_Msk | SysTick_CTRL_ENABLE_Msk;
    return 0UL;
}

#endif /* FIRMLM_CORE_CM_H */
