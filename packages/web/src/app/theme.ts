import {
  Anchor,
  Badge,
  type CSSVariablesResolver,
  createTheme,
  Modal,
  NavLink,
  Notification,
} from '@mantine/core';

/**
 * Colors darkened where Mantine's defaults fall under WCAG AA contrast (4.5:1) on white: the primary teal at shade
 * 9 (white text on it in both schemes), dimmed text at gray 7, badges as a dot beside body-colored text, the current page in the
 * navigation filled (the browser tests scan every page with axe-core).
 */
export const theme = createTheme({
  primaryColor: 'teal',
  primaryShade: { light: 9, dark: 9 },
  defaultRadius: 'md',
  // People who ask their system for less motion get no transitions.
  respectReducedMotion: true,
  fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif',
  fontFamilyMonospace: 'ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace',
  components: {
    // Links inside text are told apart by more than their color.
    Anchor: Anchor.extend({ defaultProps: { underline: 'always' } }),
    // A colored dot beside text in the body color: light badges' tinted text falls under 4.5:1.
    Badge: Badge.extend({ defaultProps: { variant: 'dot' } }),
    NavLink: NavLink.extend({ defaultProps: { variant: 'filled' } }),
    Modal: Modal.extend({ defaultProps: { closeButtonProps: { 'aria-label': 'Close' } } }),
    Notification: Notification.extend({ defaultProps: { closeButtonProps: { 'aria-label': 'Close' } } }),
  },
});

export const cssVariablesResolver: CSSVariablesResolver = () => ({
  variables: {},
  light: {
    '--mantine-color-dimmed': 'var(--mantine-color-gray-7)',
    '--mantine-primary-color-light-color': 'var(--mantine-color-teal-9)',
    '--mantine-primary-color-light': 'var(--mantine-color-teal-0)',
    // Light buttons' text, on their tinted background.
    ...Object.fromEntries(
      ['teal', 'red', 'blue', 'orange', 'green', 'gray'].flatMap((color) => [
        [`--mantine-color-${color}-light-color`, `var(--mantine-color-${color}-9)`],
        [`--mantine-color-${color}-light`, `var(--mantine-color-${color}-0)`],
      ]),
    ),
  },
  dark: { '--mantine-color-dimmed': 'var(--mantine-color-dark-1)' },
});
