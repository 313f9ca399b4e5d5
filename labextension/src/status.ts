/** The status bar item: my current slice, or a hint that I hold none. */
import { Widget } from '@lumino/widgets';

import { sliceLabel } from './api';
import { WorkbenchModel } from './model';

export class SliceStatus extends Widget {
  constructor(private readonly model: WorkbenchModel) {
    super();
    this.addClass('jp-WorkbenchStatus');
    this.node.title = 'My current workbench slice (click to open the Workbench sidebar)';
    model.changed.connect(this._render, this);
    this._render();
  }

  dispose(): void {
    this.model.changed.disconnect(this._render, this);
    super.dispose();
  }

  private _render(): void {
    const s = this.model.currentSlice;
    const where = s ? (s.device_keys || []).join(', ') : '';
    this.node.textContent = s
      ? `Slice: ${sliceLabel(s)}${where ? ` on ${where}` : ''}${s.state === 'active' ? '' : ` (${s.state})`}`
      : 'Slice: none';
    this.node.dataset.state = s ? s.state : 'none';
  }
}
