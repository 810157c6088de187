import { Image, ThemeIcon } from '@mantine/core';
import {
  IconApps,
  IconBrandChrome,
  IconBrandFirefox,
  IconBrandVscode,
  IconBrush,
  IconCode,
  IconDatabase,
  IconDeviceDesktop,
  IconDeviceGamepad2,
  IconFileText,
  IconFlask,
  IconGlobe,
  IconMovie,
  IconMusic,
  IconNotes,
  IconPhoto,
  IconSchool,
  IconSettings,
  IconShieldLock,
  IconTerminal2,
  IconTool,
  type Icon,
} from '@tabler/icons-react';

const BY_NAME: Record<string, Icon> = {
  terminal: IconTerminal2,
  shell: IconTerminal2,
  globe: IconGlobe,
  browser: IconGlobe,
  web: IconGlobe,
  firefox: IconBrandFirefox,
  chrome: IconBrandChrome,
  chromium: IconBrandChrome,
  desktop: IconDeviceDesktop,
  code: IconCode,
  vscode: IconBrandVscode,
  editor: IconNotes,
  notes: IconNotes,
  text: IconFileText,
  office: IconFileText,
  document: IconFileText,
  image: IconPhoto,
  photo: IconPhoto,
  graphics: IconBrush,
  paint: IconBrush,
  video: IconMovie,
  movie: IconMovie,
  music: IconMusic,
  audio: IconMusic,
  database: IconDatabase,
  game: IconDeviceGamepad2,
  games: IconDeviceGamepad2,
  science: IconFlask,
  settings: IconSettings,
  security: IconShieldLock,
  tool: IconTool,
  tools: IconTool,
  education: IconSchool,
};

const BY_CATEGORY: Record<string, Icon> = {
  development: IconCode,
  developer: IconCode,
  browsers: IconGlobe,
  browser: IconGlobe,
  internet: IconGlobe,
  web: IconGlobe,
  office: IconFileText,
  productivity: IconFileText,
  graphics: IconBrush,
  design: IconBrush,
  media: IconMovie,
  multimedia: IconMovie,
  games: IconDeviceGamepad2,
  gaming: IconDeviceGamepad2,
  science: IconFlask,
  education: IconSchool,
  security: IconShieldLock,
  utilities: IconTool,
  system: IconSettings,
  desktop: IconDeviceDesktop,
  data: IconDatabase,
};

export function iconFor(icon: string, category: string): Icon {
  return BY_NAME[icon.trim().toLowerCase()] ?? BY_CATEGORY[category.trim().toLowerCase()] ?? IconApps;
}

export const isImageIcon = (icon: string) => /^(\/|https?:)/i.test(icon.trim());

export function TemplateIcon({ icon, category, size = 44 }: { icon: string; category: string; size?: number }) {
  if (isImageIcon(icon)) {
    return <Image src={icon.trim()} alt="" w={size} h={size} fit="contain" radius="sm" />;
  }
  const Glyph = iconFor(icon, category);
  return (
    <ThemeIcon size={size} radius="md" variant="light" aria-hidden>
      <Glyph size={size * 0.6} stroke={1.6} />
    </ThemeIcon>
  );
}
