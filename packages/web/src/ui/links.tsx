import {
  Anchor,
  type AnchorProps,
  Button,
  type ButtonProps,
  Card,
  type CardProps,
  NavLink,
  type NavLinkProps,
} from '@mantine/core';
import { createLink } from '@tanstack/react-router';
import type { AnchorHTMLAttributes, Ref } from 'react';

/**
 * Mantine's looks on TanStack Router's links: `to`, `params` and `search` are typed against the route tree, so a
 * link to a page that does not exist, or without its parameters, does not compile.
 */
type Html = AnchorHTMLAttributes<HTMLAnchorElement> & { ref?: Ref<HTMLAnchorElement> };

export const AnchorLink = createLink((props: AnchorProps & Html) => <Anchor component="a" {...props} />);
export const ButtonLink = createLink((props: ButtonProps & Html) => <Button component="a" {...props} />);
export const CardLink = createLink((props: CardProps & Html) => <Card component="a" {...props} />);
export const NavLinkItem = createLink((props: NavLinkProps & Html) => <NavLink component="a" {...props} />);
