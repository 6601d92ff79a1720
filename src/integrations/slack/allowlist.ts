/**
 * Who may drive runs from Slack (start, steer, stop): SLACK_ALLOWED_USERS and SLACK_ALLOWED_CHANNELS (empty = all),
 * and people from another organisation (Slack Connect) only with SLACK_ALLOW_EXTERNAL=true. Pure.
 */
export interface SlackPolicy {
  users: readonly string[];
  channels: readonly string[];
  allowExternal: boolean;
}

export interface SlackSpeaker {
  user?: string;
  channel: string;
  /** The workspace the event was delivered for (the envelope's team_id). */
  workspace?: string;
  /** The speaker's own workspace (the event's user_team, else team). */
  userTeam?: string;
}

/** Null when the person may drive runs here; otherwise the short reply that says why and whom to ask. */
export function slackRefusal(who: SlackSpeaker, policy: SlackPolicy): string | null {
  const admin = "Ask whoever runs Deckhand for your team";
  if (!who.user) return `I only take requests from people. ${admin}.`;
  if (!policy.allowExternal && who.workspace && who.userTeam && who.userTeam !== who.workspace) {
    return `Sorry, I don't take requests from people outside this workspace. ${admin} (SLACK_ALLOW_EXTERNAL).`;
  }
  if (policy.channels.length && !policy.channels.includes(who.channel)) {
    return `Sorry, I don't take requests in this channel. ${admin} to add it (SLACK_ALLOWED_CHANNELS), or ask me in one where I work.`;
  }
  if (policy.users.length && !policy.users.includes(who.user)) {
    return `Sorry, you are not on the list of people who may start or steer my runs. ${admin} to add you (SLACK_ALLOWED_USERS).`;
  }
  return null;
}
