"use strict";(self.rspackChunkgpu_workbench_jupyterlab=self.rspackChunkgpu_workbench_jupyterlab||[]).push([[232],{475(r,o,e){var n=e(601),a=e.n(n),t=e(314),p=(e.n(t))()(a());p.push([r.id,`/* The Workbench sidebar, its log tabs and status bar item: JupyterLab's theme variables only,
   so it follows the light and dark themes. */
.jp-WorkbenchPanel {
  background: var(--jp-layout-color1);
  color: var(--jp-ui-font-color1);
  font-family: var(--jp-ui-font-family);
  font-size: var(--jp-ui-font-size1);
  overflow-y: auto;
  padding: 0 0 16px;
  min-width: 280px;
}
.jp-WorkbenchPanel .wb-header {
  display: flex;
  align-items: center;
  gap: 8px;
  padding: 10px 12px 6px;
  border-bottom: var(--jp-border-width) solid var(--jp-border-color2);
}
.jp-WorkbenchPanel h2 {
  font-size: var(--jp-ui-font-size2);
  font-weight: 600;
  margin: 0;
  text-transform: uppercase;
  letter-spacing: 0.04em;
}
.jp-WorkbenchPanel .wb-who {
  flex: 1;
  color: var(--jp-ui-font-color2);
}
.jp-WorkbenchPanel h3 {
  font-size: var(--jp-ui-font-size1);
  font-weight: 600;
  color: var(--jp-ui-font-color2);
  text-transform: uppercase;
  letter-spacing: 0.05em;
  margin: 0 0 6px;
}
.jp-WorkbenchPanel .wb-section {
  padding: 10px 12px;
  border-bottom: var(--jp-border-width) solid var(--jp-border-color3);
}
.jp-WorkbenchPanel .wb-error {
  margin: 8px 12px 0;
  padding: 6px 8px;
  border-radius: 3px;
  background: var(--jp-error-color3);
  color: var(--jp-error-color0);
  border-left: 3px solid var(--jp-error-color1);
  white-space: pre-wrap;
}
.jp-WorkbenchPanel .wb-error[hidden] {
  display: none;
}
.jp-WorkbenchPanel .wb-muted {
  color: var(--jp-ui-font-color2);
}
.jp-WorkbenchPanel .wb-summary {
  margin: 0 0 6px;
}
.jp-WorkbenchPanel .wb-list {
  list-style: none;
  margin: 0;
  padding: 0;
}
.jp-WorkbenchPanel .wb-form {
  display: flex;
  flex-direction: column;
  gap: 6px;
  margin-bottom: 8px;
}
.jp-WorkbenchPanel .wb-request-form,
.jp-WorkbenchPanel .wb-row {
  flex-direction: row;
  display: flex;
  gap: 6px;
}
.jp-WorkbenchPanel .wb-select,
.jp-WorkbenchPanel .wb-input {
  flex: 1;
  min-width: 0;
  padding: 4px 6px;
  background: var(--jp-input-background);
  color: var(--jp-ui-font-color1);
  border: var(--jp-border-width) solid var(--jp-input-border-color);
  border-radius: 2px;
  font-size: var(--jp-ui-font-size1);
}
.jp-WorkbenchPanel .wb-button {
  padding: 3px 10px;
  border: var(--jp-border-width) solid var(--jp-border-color1);
  border-radius: 2px;
  background: var(--jp-layout-color2);
  color: var(--jp-ui-font-color1);
  cursor: pointer;
  font-size: var(--jp-ui-font-size1);
}
.jp-WorkbenchPanel .wb-button:hover {
  background: var(--jp-layout-color3);
}
.jp-WorkbenchPanel .wb-button:disabled {
  opacity: 0.5;
  cursor: default;
}
.jp-WorkbenchPanel .wb-primary {
  background: var(--jp-brand-color1);
  border-color: var(--jp-brand-color1);
  color: white;
}
.jp-WorkbenchPanel .wb-primary:hover {
  background: var(--jp-brand-color0);
}
.jp-WorkbenchPanel .wb-danger:hover {
  border-color: var(--jp-error-color1);
  color: var(--jp-error-color1);
}
.jp-WorkbenchPanel .wb-icon {
  padding: 0 6px;
  border: none;
  background: transparent;
  font-size: 16px;
}
.jp-WorkbenchPanel .wb-item {
  padding: 6px 8px;
  margin-bottom: 6px;
  border: var(--jp-border-width) solid var(--jp-border-color2);
  border-radius: 3px;
  background: var(--jp-layout-color0);
}
.jp-WorkbenchPanel .wb-item-head {
  display: flex;
  align-items: center;
  justify-content: space-between;
  gap: 6px;
}
.jp-WorkbenchPanel .wb-item-title {
  font-weight: 600;
  overflow: hidden;
  text-overflow: ellipsis;
  white-space: nowrap;
}
.jp-WorkbenchPanel .wb-item-detail {
  margin-top: 2px;
  font-size: var(--jp-ui-font-size0);
  overflow-wrap: anywhere;
}
.jp-WorkbenchPanel .wb-actions {
  display: flex;
  gap: 6px;
  margin-top: 6px;
}
.jp-WorkbenchPanel .wb-empty {
  color: var(--jp-ui-font-color2);
  font-style: italic;
  padding: 4px 0;
}
.jp-WorkbenchPanel .wb-job-error {
  margin-top: 4px;
  color: var(--jp-error-color1);
  font-size: var(--jp-ui-font-size0);
  white-space: pre-wrap;
}
.wb-badge {
  display: inline-block;
  padding: 0 7px;
  border-radius: 9px;
  font-size: var(--jp-ui-font-size0);
  line-height: 17px;
  background: var(--jp-layout-color3);
  color: var(--jp-ui-font-color1);
  white-space: nowrap;
}
.wb-state-active,
.wb-state-running {
  background: var(--jp-info-color3);
  color: var(--jp-info-color0);
}
.wb-state-succeeded {
  background: var(--jp-success-color3);
  color: var(--jp-success-color0);
}
.wb-state-failed,
.wb-state-preempted,
.wb-state-expired,
.wb-state-reclaimed {
  background: var(--jp-error-color3);
  color: var(--jp-error-color0);
}
.wb-state-queued,
.wb-state-allocating,
.wb-state-idle {
  background: var(--jp-warn-color3);
  color: var(--jp-warn-color0);
}
.jp-WorkbenchLogs {
  overflow: auto;
  background: var(--jp-layout-color0);
  font-family: var(--jp-ui-font-family);
}
.jp-WorkbenchLogs .wb-logs-head {
  position: sticky;
  top: 0;
  display: flex;
  align-items: center;
  gap: 8px;
  padding: 8px 12px;
  background: var(--jp-layout-color1);
  border-bottom: var(--jp-border-width) solid var(--jp-border-color2);
}
.jp-WorkbenchLogs .wb-muted {
  color: var(--jp-ui-font-color2);
  flex: 1;
}
.jp-WorkbenchLogs .wb-log {
  margin: 0;
  padding: 8px 12px;
  font-family: var(--jp-code-font-family);
  font-size: var(--jp-code-font-size);
  line-height: var(--jp-code-line-height);
  white-space: pre-wrap;
  word-break: break-word;
  color: var(--jp-content-font-color1);
}
.jp-WorkbenchStatus {
  padding: 0 6px;
  cursor: pointer;
  line-height: 24px;
}
.jp-WorkbenchPanel .wb-node {
  padding: 4px 0 6px;
}
.jp-WorkbenchPanel .wb-node + .wb-node {
  border-top: var(--jp-border-width) dashed var(--jp-border-color3);
}
.jp-WorkbenchPanel .wb-node-head {
  display: flex;
  gap: 8px;
  align-items: baseline;
}
.jp-WorkbenchPanel .wb-node-name {
  font-family: var(--jp-code-font-family);
  font-size: var(--jp-code-font-size);
  font-weight: 600;
}
.jp-WorkbenchPanel .wb-node-model {
  color: var(--jp-ui-font-color2);
  overflow: hidden;
  text-overflow: ellipsis;
  white-space: nowrap;
}
.jp-WorkbenchPanel .wb-chips {
  display: flex;
  flex-wrap: wrap;
  gap: 3px;
  margin: 4px 0 2px;
}
.jp-WorkbenchPanel .wb-chip {
  width: 22px;
  height: 18px;
  line-height: 18px;
  text-align: center;
  font-size: var(--jp-ui-font-size0);
  border-radius: 2px;
  background: var(--jp-layout-color3);
  color: var(--jp-ui-font-color1);
  border: 1px solid var(--jp-border-color2);
}
.jp-WorkbenchPanel .wb-chip-mig {
  border-style: dashed;
}
.jp-WorkbenchPanel .wb-chip-mine {
  background: var(--jp-brand-color1);
  border-color: var(--jp-brand-color1);
  color: white;
}

.jp-WorkbenchPanel .wb-auto-renew {
  margin-left: 8px;
  cursor: pointer;
  white-space: nowrap;
}
`,""]),e.d(o,{},{A:p})},314(r){r.exports=function(r){var o=[];return o.toString=function(){return this.map(function(o){var e="",n=void 0!==o[5];return o[4]&&(e+="@supports (".concat(o[4],") {")),o[2]&&(e+="@media ".concat(o[2]," {")),n&&(e+="@layer".concat(o[5].length>0?" ".concat(o[5]):""," {")),e+=r(o),n&&(e+="}"),o[2]&&(e+="}"),o[4]&&(e+="}"),e}).join("")},o.i=function(r,e,n,a,t){"string"==typeof r&&(r=[[null,r,void 0]]);var p={};if(n)for(var i=0;i<this.length;i++){var c=this[i][0];null!=c&&(p[c]=!0)}for(var l=0;l<r.length;l++){var d=[].concat(r[l]);n&&p[d[0]]||(void 0!==t&&(void 0===d[5]||(d[1]="@layer".concat(d[5].length>0?" ".concat(d[5]):""," {").concat(d[1],"}")),d[5]=t),e&&(d[2]&&(d[1]="@media ".concat(d[2]," {").concat(d[1],"}")),d[2]=e),a&&(d[4]?(d[1]="@supports (".concat(d[4],") {").concat(d[1],"}"),d[4]=a):d[4]="".concat(a)),o.push(d))}},o}},601(r){r.exports=function(r){return r[1]}},72(r){var o=[];function e(r){for(var e=-1,n=0;n<o.length;n++)if(o[n].identifier===r){e=n;break}return e}function n(r,n){for(var a={},t=[],p=0;p<r.length;p++){var i=r[p],c=n.base?i[0]+n.base:i[0],l=a[c]||0,d="".concat(c," ").concat(l);a[c]=l+1;var s=e(d),b={css:i[1],media:i[2],sourceMap:i[3],supports:i[4],layer:i[5]};if(-1!==s)o[s].references++,o[s].updater(b);else{var u=function(r,o){var e=o.domAPI(o);return e.update(r),function(o){o?(o.css!==r.css||o.media!==r.media||o.sourceMap!==r.sourceMap||o.supports!==r.supports||o.layer!==r.layer)&&e.update(r=o):e.remove()}}(b,n);n.byIndex=p,o.splice(p,0,{identifier:d,updater:u,references:1})}t.push(d)}return t}r.exports=function(r,a){var t=n(r=r||[],a=a||{});return function(r){r=r||[];for(var p=0;p<t.length;p++){var i=e(t[p]);o[i].references--}for(var c=n(r,a),l=0;l<t.length;l++){var d=e(t[l]);0===o[d].references&&(o[d].updater(),o.splice(d,1))}t=c}}},659(r){var o={};r.exports=function(r,e){var n=function(r){if(void 0===o[r]){var e=document.querySelector(r);if(window.HTMLIFrameElement&&e instanceof window.HTMLIFrameElement)try{e=e.contentDocument.head}catch(r){e=null}o[r]=e}return o[r]}(r);if(!n)throw Error("Couldn't find a style target. This probably means that the value for the 'insert' parameter is invalid.");n.appendChild(e)}},540(r){r.exports=function(r){var o=document.createElement("style");return r.setAttributes(o,r.attributes),r.insert(o,r.options),o}},56(r,o,e){r.exports=function(r){var o=e.nc;o&&r.setAttribute("nonce",o)}},825(r){r.exports=function(r){if("u"<typeof document)return{update:function(){},remove:function(){}};var o=r.insertStyleElement(r);return{update:function(e){var n,a,t;n="",e.supports&&(n+="@supports (".concat(e.supports,") {")),e.media&&(n+="@media ".concat(e.media," {")),(a=void 0!==e.layer)&&(n+="@layer".concat(e.layer.length>0?" ".concat(e.layer):""," {")),n+=e.css,a&&(n+="}"),e.media&&(n+="}"),e.supports&&(n+="}"),(t=e.sourceMap)&&"u">typeof btoa&&(n+="\n/*# sourceMappingURL=data:application/json;base64,".concat(btoa(unescape(encodeURIComponent(JSON.stringify(t))))," */")),r.styleTagTransform(n,o,r.options)},remove:function(){var r;null===(r=o).parentNode||r.parentNode.removeChild(r)}}}},113(r){r.exports=function(r,o){if(o.styleSheet)o.styleSheet.cssText=r;else{for(;o.firstChild;)o.removeChild(o.firstChild);o.appendChild(document.createTextNode(r))}}},579(r,o,e){var n=e(72),a=e.n(n),t=e(825),p=e.n(t),i=e(659),c=e.n(i),l=e(56),d=e.n(l),s=e(540),b=e.n(s),u=e(113),f=e.n(u),h=e(475),v={};v.styleTagTransform=f(),v.setAttributes=d(),v.insert=c().bind(null,"head"),v.domAPI=p(),v.insertStyleElement=b(),a()(h.A,v),h.A&&h.A.locals&&h.A.locals}}]);