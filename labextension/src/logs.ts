/**
 * A main-area tab with a job's log that follows it while it runs: it asks the
 * API for the bytes after the last offset until the job is finished and the
 * whole log has been read, then stops polling.
 */
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import { api, IJob, TERMINAL_JOB_STATES } from './api';

export class JobLogView extends Widget {
  constructor(readonly job: IJob) {
    super();
    this.id = `workbench-logs-${job.id}`;
    this.addClass('jp-WorkbenchLogs');
    this.title.label = `Logs: ${job.name || job.id}`;
    this.title.caption = `Log of job ${job.id}`;
    this.title.closable = true;
    this._state = document.createElement('span');
    this._state.className = 'wb-badge';
    const head = document.createElement('div');
    head.className = 'wb-logs-head';
    const name = document.createElement('strong');
    name.textContent = `${job.name || job.id}`;
    const id = document.createElement('span');
    id.className = 'wb-muted';
    id.textContent = ` · ${job.id} · ${job.owner}`;
    head.append(name, id, this._state);
    this._pre = document.createElement('pre');
    this._pre.className = 'wb-log';
    this.node.append(head, this._pre);
    this._setState(job.state);
    this._poll = new Poll({
      auto: true,
      factory: () => this._tick(),
      frequency: { interval: 1000, backoff: true, max: 30000 },
      name: `workbench:logs:${job.id}`,
      standby: () => this.isHidden || 'when-hidden'
    });
  }

  /** Whether the log has been read to its end and the job is over. */
  get done(): boolean {
    return this._done;
  }

  dispose(): void {
    this._poll.dispose();
    super.dispose();
  }

  private async _tick(): Promise<void> {
    const chunk = await api.logs(this.job.id, this._offset);
    this._setState(chunk.state);
    if (chunk.text) {
      const atBottom = this.node.scrollTop + this.node.clientHeight >= this.node.scrollHeight - 8;
      this._pre.append(document.createTextNode(chunk.text));
      if (atBottom) {
        this.node.scrollTop = this.node.scrollHeight;
      }
    }
    this._offset = chunk.next_offset;
    if (chunk.done) {
      this._done = true;
      this.node.dataset.done = 'true';
      if (!this._pre.textContent) {
        this._pre.textContent = '(the job wrote nothing to its log)';
      }
      void this._poll.stop();
    }
  }

  private _setState(state: string): void {
    this._state.textContent = state;
    this._state.className = `wb-badge wb-state-${state}`;
    this._state.dataset.state = state;
    this.node.dataset.state = state;
    if (TERMINAL_JOB_STATES.includes(state)) {
      this.title.label = `Logs: ${this.job.name || this.job.id} (${state})`;
    }
  }

  private _offset = 0;
  private _done = false;
  private _pre: HTMLPreElement;
  private _state: HTMLElement;
  private _poll: Poll;
}
