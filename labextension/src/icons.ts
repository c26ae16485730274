/** The extension's icons. */

import { LabIcon } from '@jupyterlab/ui-components';

import boxrunSvg from '../style/icons/boxrun.svg';

export const boxrunIcon = new LabIcon({ name: 'boxrun-jupyter:boxrun', svgstr: boxrunSvg });
