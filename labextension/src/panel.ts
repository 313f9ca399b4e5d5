/**
 * The "Workbench" sidebar: the fleet at a glance, my slices, my jobs.
 *
 * Plain DOM on a Lumino widget: the forms are built once (so typing is never
 * interrupted by a refresh) and the lists are redrawn when the model changes.
 */
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import {
  api,
  formatBytes,
  formatElapsed,
  IDeviceOffers,
  IJob,
  ILease,
  LIVE_LEASE_STATES,
  sliceLabel,
  TERMINAL_JOB_STATES
} from './api';
import { EndpointsSection } from './endpoints';
import { WorkbenchModel } from './model';

type Attrs = Record<string, string>;

function h(tag: string, attrs: Attrs = {}, ...children: (Node | string | null)[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    el.setAttribute(k, v);
  }
  for (const child of children) {
    if (child !== null) {
      el.append(child);
    }
  }
  return el;
}

function button(label: string, title: string, onClick: () => void, cls = ''): HTMLButtonElement {
  const b = h('button', { class: `wb-button ${cls}`.trim(), title, type: 'button' }, label) as HTMLButtonElement;
  b.addEventListener('click', onClick);
  return b;
}

function badge(state: string): HTMLElement {
  return h('span', { class: `wb-badge wb-state-${state}`, 'data-state': state }, state);
}

/** The request form's choices: the core's offers for each kind of device (REST `GET devices`),
 * never re-derived here: [spec, label] per offer, grouped by kind of device. */
export function sliceChoices(offers: IDeviceOffers[]): { group: string; options: [string, string][] }[] {
  return offers.map(g => ({ group: g.label, options: g.offers.map(o => [o.spec, o.label] as [string, string]) }));
}

export class WorkbenchPanel extends Widget {
  constructor(readonly model: WorkbenchModel, private readonly openLogs: (job: IJob) => void) {
    super();
    this.id = 'workbench-sidebar';
    this.addClass('jp-WorkbenchPanel');
    this.title.caption = 'Workbench: fleet, my slices, my jobs';
    this._build();
    model.changed.connect(this._render, this);
  }

  /** Focus the slice request form (the "Workbench: Request slice" command). */
  focusRequest(): void {
    this._specSelect.focus();
  }

  protected onAfterShow(msg: Message): void {
    this.model.setDetailed(true);
  }

  protected onAfterHide(msg: Message): void {
    this.model.setDetailed(false);
  }

  protected onAfterAttach(msg: Message): void {
    this.model.setDetailed(this.isVisible);
  }

  dispose(): void {
    this.model.changed.disconnect(this._render, this);
    this._endpoints.dispose();
    super.dispose();
  }

  private _build(): void {
    const root = this.node;
    this._who = h('span', { class: 'wb-who' });
    root.append(
      h('header', { class: 'wb-header' }, h('h2', {}, 'Workbench'), this._who,
        button('⟳', 'Refresh now', () => void this.model.refresh(), 'wb-icon')),
      (this._error = h('div', { class: 'wb-error', role: 'alert' }))
    );
    // Fleet
    this._fleet = h('div', { class: 'wb-fleet' });
    root.append(h('section', { class: 'wb-section wb-fleet-section' }, h('h3', {}, 'Fleet'), this._fleet));
    // Slices
    this._specSelect = h('select', { class: 'wb-select', 'aria-label': 'Slice to request', name: 'spec' }) as HTMLSelectElement;
    this._requestButton = button('Request', 'Request this slice', () => void this._requestSlice(), 'wb-primary');
    this._slices = h('ul', { class: 'wb-list wb-slices' });
    root.append(
      h('section', { class: 'wb-section wb-slices-section' }, h('h3', {}, 'My slices'),
        h('div', { class: 'wb-form wb-request-form' }, this._specSelect, this._requestButton),
        this._slices)
    );
    // Jobs
    this._target = h('input', {
      class: 'wb-input', type: 'text', name: 'target', placeholder: 'script.py or notebook.ipynb',
      'aria-label': 'Script or notebook to run', spellcheck: 'false'
    }) as HTMLInputElement;
    this._jobSlice = h('select', { class: 'wb-select', 'aria-label': 'Slice to run in', name: 'slice' }) as HTMLSelectElement;
    this._submitButton = button('Submit', 'Submit this script or notebook as a job', () => void this._submitJob(), 'wb-primary');
    this._target.addEventListener('keydown', e => {
      if (e.key === 'Enter') {
        void this._submitJob();
      }
    });
    this._jobs = h('ul', { class: 'wb-list wb-jobs' });
    root.append(
      h('section', { class: 'wb-section wb-jobs-section' }, h('h3', {}, 'My jobs'),
        h('div', { class: 'wb-form wb-submit-form' }, this._target,
          h('div', { class: 'wb-row' }, this._jobSlice, this._submitButton)),
        this._jobs)
    );
    root.append((this._endpoints = new EndpointsSection()).node);
    this._render();
  }

  private _render(): void {
    const m = this.model;
    this._who.textContent = m.info ? `${m.info.user}${m.info.admin ? ' (admin)' : ''}` : '';
    const error = this._actionError || m.error;
    this._error.textContent = error || '';
    this._error.hidden = !error;
    this._renderFleet();
    this._renderSlices();
    this._renderJobs();
  }

  private _renderFleet(): void {
    const inv = this.model.inventory;
    const err = this.model.sectionErrors['fleet'];
    if (!inv) {
      this._fleet.replaceChildren(h('p', { class: 'wb-muted' }, err || 'Loading…'));
      return;
    }
    const gpus = inv.devices.filter(d => d.kind === 'gpu');
    const summary = gpus.length
      ? `${gpus.length} GPU${gpus.length > 1 ? 's' : ''} on ${inv.nodes.length} node${inv.nodes.length > 1 ? 's' : ''}`
      : `CPU only · ${inv.nodes.length} node${inv.nodes.length > 1 ? 's' : ''}`;
    const busy = new Map<string, number>();
    for (const s of this.model.slices) {
      if (LIVE_LEASE_STATES.includes(s.state)) {
        for (const k of s.device_keys || []) {
          busy.set(k, (busy.get(k) || 0) + 1);
        }
      }
    }
    const nodes = inv.nodes.slice(0, 12).map(node => {
      const devices = inv.devices.filter(d => d.node === node.name);
      const gpuDevices = devices.filter(d => d.kind === 'gpu');
      const cpu = devices.find(d => d.kind === 'cpu');
      const models = [...new Set(gpuDevices.map(d => d.model))];
      const head = gpuDevices.length
        ? `${gpuDevices.length}× ${models.join(', ')}`
        : cpu ? cpu.model : '';
      const chips = gpuDevices.map(d => {
        const mine = busy.get(d.key);
        const used = d.utilization_pct ?? null;
        const title = `${d.key} · ${d.model} · ${formatBytes(d.memory_bytes)}${d.mig ? ' · MIG' : ''}` +
          (used !== null ? ` · ${used.toFixed(0)}% busy` : '') + (mine ? ' · holds my slice' : '');
        return h('span', { class: `wb-chip${mine ? ' wb-chip-mine' : ''}${d.mig ? ' wb-chip-mig' : ''}`, title, 'data-key': d.key },
          String(d.index));
      });
      const cpuLine = cpu
        ? h('div', { class: 'wb-muted wb-node-cpu' },
          `${cpu.cores ?? '?'} CPU cores${cpu.memory_bytes ? ` · ${formatBytes(cpu.memory_bytes)}` : ''}` +
          (busy.get(cpu.key) ? ` · ${busy.get(cpu.key)} slice${busy.get(cpu.key)! > 1 ? 's' : ''} mine` : ''))
        : null;
      return h('li', { class: 'wb-node', 'data-node': node.name },
        h('div', { class: 'wb-node-head' }, h('span', { class: 'wb-node-name' }, node.name),
          h('span', { class: 'wb-node-model', title: head }, head)),
        chips.length ? h('div', { class: 'wb-chips' }, ...chips) : null,
        cpuLine);
    });
    const more = inv.nodes.length > 12 ? h('p', { class: 'wb-muted' }, `… and ${inv.nodes.length - 12} more nodes`) : null;
    this._fleet.replaceChildren(
      h('p', { class: 'wb-summary' }, h('strong', {}, summary), h('span', { class: 'wb-muted', title: inv.source }, ` · ${inv.source.split('/').pop()}`)),
      h('ul', { class: 'wb-list wb-nodes' }, ...nodes),
      ...(more ? [more] : [])
    );
    this._fillSpecChoices();
  }

  private _fillSpecChoices(): void {
    const inv = this.model.inventory;
    if (!inv) {
      return;
    }
    const key = JSON.stringify(inv.offers);
    if (key === this._choicesKey) {
      return;
    }
    this._choicesKey = key;
    const previous = this._specSelect.value;
    this._specSelect.replaceChildren(
      ...sliceChoices(inv.offers).map((g, i) =>
        h('optgroup', { label: g.group }, ...g.options.map(([value, label]) => h('option', { value, 'data-group': String(i) }, label)))
      )
    );
    if (previous) {
      this._specSelect.value = previous;
    }
  }

  private _renderSlices(): void {
    const err = this.model.sectionErrors['slices'];
    this._requestButton.disabled = !!err;
    const live = this.model.slices.filter(s => LIVE_LEASE_STATES.includes(s.state));
    const items = live.map(s => this._sliceItem(s));
    this._slices.replaceChildren(...(items.length ? items : [h('li', { class: 'wb-empty' }, err || 'No slices yet: request one above.')]));
    // the job form's slice choices: my live slices, or a new CPU slice for the job
    const previous = this._jobSlice.value;
    const options = live.map(s => h('option', { value: s.id }, `${sliceLabel(s)} · ${s.id}`));
    options.push(h('option', { value: '' }, 'a new slice for the job'));
    this._jobSlice.replaceChildren(...options);
    if (previous && Array.from(this._jobSlice.options).some(o => o.value === previous)) {
      this._jobSlice.value = previous;
    }
  }

  private _sliceItem(s: ILease): HTMLElement {
    const where = (s.device_keys || []).join(', ') || s.node || '';
    const expires = s.expires_at ? `expires in ${formatElapsed(new Date().toISOString(), s.expires_at)}` : '';
    return h('li', { class: 'wb-item wb-slice', 'data-id': s.id },
      h('div', { class: 'wb-item-head' }, h('span', { class: 'wb-item-title' }, sliceLabel(s)), badge(s.state)),
      h('div', { class: 'wb-muted wb-item-detail' }, [s.id, where].filter(Boolean).join(' · ')),
      expires ? h('div', { class: 'wb-muted wb-item-detail wb-expires' }, expires, s.state !== 'queued' ? this._autoRenew(s) : null) : null,
      s.state === 'queued' && s.reason ? h('div', { class: 'wb-muted wb-reason' }, s.reason) : null,
      h('div', { class: 'wb-actions' },
        button('Renew', 'Renew the lease for another TTL', () => void this._act(() => api.renewSlice(s.id))),
        button('Release', 'Give this slice back', () => void this._act(() => api.releaseSlice(s.id)), 'wb-danger'))
    );
  }

  /** The auto-renew switch: while on, the sidebar renews the slice as long as JupyterLab is open. */
  private _autoRenew(s: ILease): HTMLElement {
    const box = h('input', { type: 'checkbox', name: 'auto-renew' }) as HTMLInputElement;
    box.checked = this.model.autoRenew(s.id);
    box.addEventListener('change', () => this.model.setAutoRenew(s.id, box.checked));
    return h('label', {
      class: 'wb-auto-renew',
      title: 'Renew this slice before it expires, as long as JupyterLab is open'
    }, box, ' auto-renew');
  }

  private _renderJobs(): void {
    const err = this.model.sectionErrors['jobs'];
    this._submitButton.disabled = !!err;
    const jobs = [...this.model.jobs].sort((a, b) => (b.created_at || '').localeCompare(a.created_at || '')).slice(0, 30);
    const items = jobs.map(j => this._jobItem(j));
    this._jobs.replaceChildren(...(items.length ? items : [h('li', { class: 'wb-empty' }, err || 'No jobs yet.')]));
  }

  private _jobItem(j: IJob): HTMLElement {
    const done = TERMINAL_JOB_STATES.includes(j.state);
    const elapsed = formatElapsed(j.started_at || j.created_at, j.ended_at);
    return h('li', { class: 'wb-item wb-job', 'data-id': j.id },
      h('div', { class: 'wb-item-head' }, h('span', { class: 'wb-item-title', title: j.target || '' }, j.name || j.id), badge(j.state)),
      h('div', { class: 'wb-muted wb-item-detail' }, [j.id, elapsed, j.slice_spec || ''].filter(Boolean).join(' · ')),
      j.error ? h('div', { class: 'wb-job-error' }, j.error) : null,
      h('div', { class: 'wb-actions' },
        button('Logs', 'Open the log in a tab that follows it', () => this.openLogs(j)),
        done ? null : button('Cancel', 'Cancel this job', () => void this._act(() => api.cancelJob(j.id)), 'wb-danger'))
    );
  }

  private async _requestSlice(): Promise<void> {
    const chosen = this._specSelect.selectedOptions[0];
    const group = this.model.inventory?.offers[Number(chosen?.dataset.group)];
    if (!chosen || !group) {
      return;
    }
    const spec = chosen.value;
    // the offer's kind of device: a share of *this* GPU model, not of any
    const models = group.device_kind === 'gpu' ? [group.model] : undefined;
    await this._act(() => api.requestSlice(models ? { spec, models } : { spec }), this._requestButton);
  }

  private async _submitJob(): Promise<void> {
    const target = this._target.value.trim();
    if (!target) {
      this._showError('Type the path of a script or notebook to run (relative to the file browser\'s root).');
      this._target.focus();
      return;
    }
    await this._act(() => api.submitJob(target, this._jobSlice.value || undefined), this._submitButton);
  }

  private async _act(fn: () => Promise<unknown>, busy?: HTMLButtonElement): Promise<void> {
    if (busy) {
      busy.disabled = true;
    }
    try {
      await fn();
      this._showError(null);
    } catch (error) {
      this._showError(error instanceof Error ? error.message : String(error));
    } finally {
      if (busy) {
        busy.disabled = false;
      }
      await this.model.refresh();
    }
  }

  private _showError(message: string | null): void {
    this._actionError = message;
    this._error.textContent = message || this.model.error || '';
    this._error.hidden = !this._error.textContent;
  }

  private _who!: HTMLElement;
  private _error!: HTMLElement;
  private _fleet!: HTMLElement;
  private _slices!: HTMLElement;
  private _jobs!: HTMLElement;
  private _endpoints!: EndpointsSection;
  private _specSelect!: HTMLSelectElement;
  private _requestButton!: HTMLButtonElement;
  private _target!: HTMLInputElement;
  private _jobSlice!: HTMLSelectElement;
  private _submitButton!: HTMLButtonElement;
  private _choicesKey = '';
  private _actionError: string | null = null;
}
