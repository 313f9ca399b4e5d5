/**
 * The sidebar's "My endpoints" section: each model I serve, its state, its requests/s
 * (the server's own count over the last 10 s) and its KServe v2 URL through this
 * Jupyter server's proxy; Stop ends it. It polls `workbench/api/endpoints` on its
 * own, every 2 s while the sidebar is shown (standby while the tab is hidden).
 */
import { Poll } from '@lumino/polling';

import { request, WorkbenchError } from './api';

export interface IEndpoint {
  id: string;
  name: string;
  owner: string;
  state: string;
  url: string | null;
  proxy_url: string | null;
  lease_id: string;
  reason: string | null;
  stats: { requests?: number; rps?: number };
}

export const ENDPOINTS_INTERVAL_MS = 2000;

function el(tag: string, cls: string, text = ''): HTMLElement {
  const node = document.createElement(tag);
  node.className = cls;
  node.textContent = text;
  return node;
}

export class EndpointsSection {
  readonly node: HTMLElement;

  constructor() {
    this._list = el('ul', 'wb-list wb-endpoints');
    this._error = el('div', 'wb-error wb-endpoints-error');
    this._error.hidden = true;
    this.node = el('section', 'wb-section wb-endpoints-section');
    this.node.append(el('h3', '', 'My endpoints'), this._error, this._list);
    this._poll = new Poll({
      auto: true,
      factory: () => this._fetch(),
      frequency: { interval: ENDPOINTS_INTERVAL_MS, backoff: true, max: 60 * 1000 },
      name: 'workbench:endpoints',
      standby: 'when-hidden'
    });
  }

  dispose(): void {
    this._poll.dispose();
  }

  private async _fetch(): Promise<void> {
    try {
      const data = await request<{ endpoints: IEndpoint[] }>('endpoints');
      this._render(data.endpoints);
      this._showError('');
    } catch (error) {
      // 503: the endpoints service is not installed here; say so once, no backoff storm
      this._showError(error instanceof Error ? error.message : String(error));
      if (!(error instanceof WorkbenchError && error.status === 503)) {
        throw error;
      }
    }
  }

  private _render(endpoints: IEndpoint[]): void {
    const items = endpoints.map(ep => this._item(ep));
    if (!items.length) {
      items.push(el('li', 'wb-empty', 'No endpoints: wb.endpoints.deploy(...) or workbench endpoints deploy.'));
    }
    this._list.replaceChildren(...items);
  }

  private _item(ep: IEndpoint): HTMLElement {
    const li = el('li', 'wb-item wb-endpoint');
    li.dataset.id = ep.id;
    const head = el('div', 'wb-item-head');
    const badge = el('span', `wb-badge wb-state-${ep.state === 'ready' ? 'active' : ep.state}`, ep.state);
    badge.dataset.state = ep.state;
    head.append(el('span', 'wb-item-title', ep.name), badge);
    const rps = ep.stats && ep.stats.rps !== undefined ? `${ep.stats.rps.toFixed(1)} req/s` : '';
    const served = ep.stats && ep.stats.requests !== undefined ? `${ep.stats.requests} served` : '';
    li.append(head, el('div', 'wb-muted wb-item-detail wb-endpoint-rate', [ep.id, rps, served].filter(Boolean).join(' · ')));
    if (ep.proxy_url) {
      const link = document.createElement('a');
      link.className = 'wb-endpoint-url';
      link.href = `${ep.proxy_url}v2/models/${encodeURIComponent(ep.name)}`;
      link.target = '_blank';
      link.textContent = `${ep.proxy_url}v2/models/${ep.name}`;
      const row = el('div', 'wb-muted wb-item-detail');
      row.append(link);
      li.append(row);
    }
    const stop = el('button', 'wb-button wb-danger', 'Stop') as HTMLButtonElement;
    stop.type = 'button';
    stop.title = 'Stop this endpoint (its URL no longer answers)';
    stop.addEventListener('click', () => void this._stop(ep.id, stop));
    const actions = el('div', 'wb-actions');
    actions.append(stop);
    li.append(actions);
    return li;
  }

  private async _stop(id: string, button: HTMLButtonElement): Promise<void> {
    button.disabled = true;
    try {
      await request(`endpoints/${id}`, 'DELETE');
    } catch (error) {
      this._showError(error instanceof Error ? error.message : String(error));
    }
    await this._poll.refresh();
  }

  private _showError(message: string): void {
    this._error.textContent = message;
    this._error.hidden = !message;
  }

  private _list: HTMLElement;
  private _error: HTMLElement;
  private _poll: Poll;
}
