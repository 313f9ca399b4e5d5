/**
 * The workbench in JupyterLab: a "Workbench" sidebar (fleet, my slices, my
 * jobs), job logs in main-area tabs that follow the job, a status bar item
 * with my current slice, palette commands and a launcher tile for the Panel
 * dashboard (served through jupyter-server-proxy at `{base_url}workbench/`).
 */
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import { ILauncher } from '@jupyterlab/launcher';
import { IStatusBar } from '@jupyterlab/statusbar';

import { IJob } from './api';
import { workbenchIcon } from './icon';
import { JobLogView } from './logs';
import { WorkbenchModel } from './model';
import { WorkbenchPanel } from './panel';
import { SliceStatus } from './status';

namespace CommandIDs {
  export const requestSlice = 'workbench:request-slice';
  export const openDashboard = 'workbench:open-dashboard';
  export const openSidebar = 'workbench:open-sidebar';
  export const openLogs = 'workbench:open-logs';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'gpu-workbench-jupyterlab:plugin',
  description: 'The GPU workbench sidebar, job logs, status bar item and dashboard launcher.',
  autoStart: true,
  requires: [ILabShell],
  optional: [ICommandPalette, ILauncher, IStatusBar, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    shell: ILabShell,
    palette: ICommandPalette | null,
    launcher: ILauncher | null,
    statusBar: IStatusBar | null,
    restorer: ILayoutRestorer | null
  ) => {
    const model = new WorkbenchModel();
    const tracker = new WidgetTracker<MainAreaWidget<JobLogView>>({ namespace: 'workbench-logs' });

    const openLogs = (job: IJob) => {
      const existing = tracker.find(w => w.content.job.id === job.id);
      if (existing) {
        shell.activateById(existing.id);
        return;
      }
      const content = new JobLogView(job);
      const widget = new MainAreaWidget({ content });
      widget.id = `workbench-logs-tab-${job.id}`;
      widget.title.icon = workbenchIcon;
      widget.title.label = content.title.label;
      content.title.changed.connect(() => {
        widget.title.label = content.title.label;
      });
      void tracker.add(widget);
      shell.add(widget, 'main');
      shell.activateById(widget.id);
    };

    const panel = new WorkbenchPanel(model, openLogs);
    panel.title.icon = workbenchIcon;
    shell.add(panel, 'left', { rank: 600 });
    if (restorer) {
      restorer.add(panel, 'workbench-sidebar');
    }

    app.commands.addCommand(CommandIDs.openSidebar, {
      label: 'Workbench: Open sidebar',
      icon: workbenchIcon,
      execute: () => shell.activateById(panel.id)
    });
    app.commands.addCommand(CommandIDs.requestSlice, {
      label: 'Workbench: Request slice',
      caption: 'Open the Workbench sidebar at its slice request form',
      icon: workbenchIcon,
      execute: () => {
        shell.activateById(panel.id);
        panel.focusRequest();
      }
    });
    app.commands.addCommand(CommandIDs.openDashboard, {
      label: args => (args['isLauncher'] ? 'Workbench dashboard' : 'Workbench: Open dashboard'),
      caption: 'The Panel dashboard: fleet, queue, logs, profiles, kernels (opens in a new browser tab)',
      icon: workbenchIcon,
      execute: () => {
        window.open(URLExt.join(PageConfig.getBaseUrl(), 'workbench/'), '_blank');
      }
    });
    app.commands.addCommand(CommandIDs.openLogs, {
      label: 'Workbench: Open job logs',
      execute: args => openLogs({ id: String(args['id']), owner: '', state: '' })
    });

    if (palette) {
      for (const command of [CommandIDs.requestSlice, CommandIDs.openDashboard, CommandIDs.openSidebar]) {
        palette.addItem({ command, category: 'Workbench' });
      }
    }
    if (launcher) {
      launcher.add({ command: CommandIDs.openDashboard, category: 'Other', rank: 1, args: { isLauncher: true } });
    }
    if (statusBar) {
      const status = new SliceStatus(model);
      status.node.addEventListener('click', () => shell.activateById(panel.id));
      statusBar.registerStatusItem('gpu-workbench-jupyterlab:slice', {
        item: status,
        align: 'left',
        rank: 50
      });
    }
  }
};

export default plugin;
