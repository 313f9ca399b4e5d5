import { LabIcon } from '@jupyterlab/ui-components';

const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <rect x="4" y="4" width="16" height="16" rx="2" ry="2" fill="none" stroke="#616161" stroke-width="2"/>
    <rect x="7" y="7" width="4" height="4"/><rect x="13" y="7" width="4" height="4"/>
    <rect x="7" y="13" width="4" height="4"/><rect x="13" y="13" width="4" height="4" opacity="0.45"/>
    <path d="M9 1v3M15 1v3M9 20v3M15 20v3M1 9h3M1 15h3M20 9h3M20 15h3" stroke="#616161" stroke-width="1.6"/>
  </g>
</svg>`;

export const workbenchIcon = new LabIcon({ name: 'gpu-workbench:chip', svgstr: svg });
