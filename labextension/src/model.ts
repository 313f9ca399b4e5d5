/**
 * The sidebar's state: the fleet, my slices and my jobs, refreshed by one Poll.
 *
 * The poll backs off on errors (Lumino's exponential backoff), goes to standby
 * while the browser tab is hidden, and slows to a status-bar heartbeat while the
 * sidebar itself is closed (then it only asks for my slices).
 */
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import {
  api,
  IInfo,
  IInventory,
  IJob,
  ILease,
  LIVE_LEASE_STATES,
  WorkbenchError
} from './api';

export const FAST_INTERVAL_MS = 2000;
export const SLOW_INTERVAL_MS = 30000;

export class WorkbenchModel {
  info: IInfo | null = null;
  inventory: IInventory | null = null;
  slices: ILease[] = [];
  jobs: IJob[] = [];
  error: string | null = null;
  /** Errors the API answered for a service that is not installed (503) are shown per section. */
  sectionErrors: Record<string, string> = {};

  constructor() {
    this._poll = new Poll({
      auto: true,
      factory: () => this._fetch(),
      frequency: { interval: SLOW_INTERVAL_MS, backoff: true, max: 5 * 60 * 1000 },
      name: 'workbench:sidebar',
      standby: 'when-hidden'
    });
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The slice the status bar shows: my newest active one, else my newest queued one. */
  get currentSlice(): ILease | null {
    const live = this.slices.filter(s => LIVE_LEASE_STATES.includes(s.state));
    return live.find(s => s.state !== 'queued') || live[0] || null;
  }

  /** The sidebar is open: poll everything, often. */
  setDetailed(detailed: boolean): void {
    this._detailed = detailed;
    this._poll.frequency = {
      ...this._poll.frequency,
      interval: detailed ? FAST_INTERVAL_MS : SLOW_INTERVAL_MS
    };
    if (detailed) {
      void this._poll.refresh();
    }
  }

  refresh(): Promise<void> {
    return this._poll.refresh();
  }

  dispose(): void {
    this._poll.dispose();
  }

  private async _fetch(): Promise<void> {
    try {
      if (!this.info) {
        this.info = await api.info();
      }
      const tasks: Promise<void>[] = [
        this._section('slices', async () => {
          this.slices = await api.slices();
        })
      ];
      if (this._detailed) {
        tasks.push(
          this._section('fleet', async () => {
            this.inventory = await api.devices();
          }),
          this._section('jobs', async () => {
            this.jobs = await api.jobs();
          })
        );
      }
      await Promise.all(tasks);
      this.error = null;
    } catch (error) {
      this.error = error instanceof Error ? error.message : String(error);
      this._changed.emit();
      throw error; // let the poll back off
    }
    this._changed.emit();
  }

  /** A 503 from one service (not installed, backend down) must not blank the others. */
  private async _section(name: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
      delete this.sectionErrors[name];
    } catch (error) {
      if (error instanceof WorkbenchError && error.status === 503) {
        this.sectionErrors[name] = error.message;
        return;
      }
      throw error;
    }
  }

  private _detailed = false;
  private _poll: Poll;
  private _changed = new Signal<this, void>(this);
}
